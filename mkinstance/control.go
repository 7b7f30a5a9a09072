package mkinstance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/renameio/v2"
)

// Controller starts, stops and inspects the server of one instance, the
// job zdaemon's zdctl/zdrun pair does for the Python zeoctl. There is no
// supervisor process: start runs the server detached (its own session) and
// records its pid in the pid file; status and stop work from that file.
// The server is not restarted when it dies (zdrun's backoff/forever are not
// implemented; use systemd for that, see mkzeoinstance --systemd).
type Controller struct {
	Config  *ServerConfig
	Command []string // the server's argv, e.g. [zodbctl serve -C etc/zeo.conf]
	Env     []string // added to the environment of the server
	Dir     string   // working directory of the server
	PidFile string
	LogFile string // the server's stdout and stderr are appended here; "" = /dev/null

	StartTimeout time.Duration // waiting for the address to accept connections
	StopTimeout  time.Duration // between SIGTERM and SIGKILL
	Poll         time.Duration // how often to look while waiting
}

// NewController prepares control of the instance configured by cfg, whose
// server is started with command. Settings come from the configuration:
// pid-filename (else $INSTANCE/var/ZEO.pid), <runner> transcript (else the
// first <eventlog> log file) for the server's output, <runner> directory
// (else the instance home), start-timeout and stop-timeout. The server gets
// INSTANCE_HOME in its environment, so it picks the same pid file.
func NewController(cfg *ServerConfig, command []string) *Controller {
	home := cfg.Instance
	if home == "" {
		home = InstanceHome(cfg.File)
	}
	c := &Controller{
		Config:       cfg,
		Command:      command,
		Env:          []string{"INSTANCE_HOME=" + home},
		Dir:          home,
		PidFile:      cfg.ZEO.PidFilename,
		StartTimeout: 300 * time.Second,
		StopTimeout:  300 * time.Second,
		Poll:         50 * time.Millisecond,
	}
	if c.PidFile == "" {
		c.PidFile = filepath.Join(home, "var", "ZEO.pid")
	}
	if cfg.EventLog != nil {
		for _, h := range cfg.EventLog.Handlers {
			if h.Kind == "logfile" && h.Path != "STDOUT" && h.Path != "STDERR" {
				c.LogFile = h.Path
				break
			}
		}
	}
	if r := cfg.Runner; r != nil {
		if r.Transcript != "" {
			c.LogFile = r.Transcript
		}
		if r.Directory != "" {
			c.Dir = r.Directory
		}
		c.StartTimeout, c.StopTimeout = r.StartTimeout, r.StopTimeout
	}
	return c
}

// Status is what Controller.Status finds.
type Status struct {
	Running   bool
	Pid       int     // 0 when not running
	Address   Address // the configured address
	Listening bool    // the address accepts connections
	StalePid  int     // a pid file named this dead process
}

// ErrAlreadyRunning is returned by Start when the server runs already.
var ErrAlreadyRunning = errors.New("daemon process already running")

// AddressInUseError: something else accepts connections on the address.
// The message is runzeo's: address ('127.0.0.1', 8800) already in use.
type AddressInUseError struct{ Address Address }

func (e *AddressInUseError) Error() string {
	return fmt.Sprintf("address %s already in use", e.Address.PyRepr())
}

// CheckAddressFree does runzeo's start-up check: if something accepts a
// connection on the address, it is in use (*AddressInUseError). An inet
// address without a port (bound to an ephemeral port) is always free.
func CheckAddressFree(a Address) error {
	if dialable(a) {
		return &AddressInUseError{a}
	}
	return nil
}

func dialable(a Address) bool {
	if !a.IsUnix() && a.Port < 0 {
		return false
	}
	conn, err := net.DialTimeout(a.Network(), a.DialAddr(), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// Status reads the pid file and checks the process and the address.
func (c *Controller) Status() Status {
	st := Status{Address: c.Config.ZEO.Address}
	pid := c.readPid()
	if pid > 0 {
		if processAlive(pid) {
			st.Running, st.Pid = true, pid
		} else {
			st.StalePid = pid
		}
	}
	st.Listening = c.accepting()
	return st
}

func (c *Controller) readPid() int {
	data, err := os.ReadFile(c.PidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// processAlive: the process exists, is not a zombie and, where /proc tells,
// runs a serve command (so a recycled pid is not mistaken for the server).
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
			return false
		}
	}
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && len(cmdline) > 0 {
		// (An exiting process has an empty cmdline; it still counts until
		// it is a zombie, so its sockets are closed when we say "stopped".)
		return bytes.Contains(append([]byte{0}, cmdline...), []byte("\x00serve\x00"))
	}
	return true
}

// accepting reports whether the configured address accepts a connection.
func (c *Controller) accepting() bool { return dialable(c.Config.ZEO.Address) }

// Start starts the server in the background and waits until its address
// accepts connections (for an address without a port, until it has run for
// a second). It fails if the server exits first or the start timeout
// passes (the server is then left running, as zdctl does).
func (c *Controller) Start() (Status, error) {
	if st := c.Status(); st.Running {
		return st, ErrAlreadyRunning
	}
	if err := CheckAddressFree(c.Config.ZEO.Address); err != nil {
		return Status{}, err
	}
	out, err := c.openLog()
	if err != nil {
		return Status{}, err
	}
	defer out.Close()
	cmd := exec.Command(c.Command[0], c.Command[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Status{}, fmt.Errorf("starting %s: %w", c.Command[0], err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps the server if it exits while we run
	if err := renameio.WriteFile(c.PidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		cmd.Process.Kill()
		return Status{}, fmt.Errorf("writing pid file: %w", err)
	}
	a := c.Config.ZEO.Address
	deadline := time.Now().Add(c.StartTimeout)
	if !a.IsUnix() && a.Port < 0 {
		deadline = time.Now().Add(time.Second)
	}
	for {
		select {
		case err := <-exited:
			os.Remove(c.PidFile)
			where := ""
			if c.LogFile != "" {
				where = "; see " + c.LogFile
			}
			return Status{}, fmt.Errorf("server exited before accepting connections (%v)%s", err, where)
		case <-time.After(c.Poll):
		}
		if c.accepting() {
			return Status{Running: true, Pid: pid, Address: a, Listening: true}, nil
		}
		if time.Now().After(deadline) {
			if !a.IsUnix() && a.Port < 0 {
				return Status{Running: true, Pid: pid, Address: a}, nil
			}
			return Status{Running: true, Pid: pid, Address: a},
				fmt.Errorf("server (pid %d) does not accept connections on %s after %s", pid, a.DialAddr(), c.StartTimeout)
		}
	}
}

func (c *Controller) openLog() (*os.File, error) {
	if c.LogFile == "" {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	f, err := os.OpenFile(c.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log file: %w", err)
	}
	return f, nil
}

// StopResult says how the server went away.
type StopResult struct {
	WasRunning bool
	Pid        int
	Killed     bool // SIGTERM was not enough within StopTimeout
}

// Stop sends SIGTERM, waits up to StopTimeout for the process to end, then
// sends SIGKILL. The pid file is removed afterwards if the server left it.
func (c *Controller) Stop() (StopResult, error) {
	st := c.Status()
	if !st.Running {
		// Remove the pid file only when its process is gone, not when the
		// pid now belongs to another program (or to a Python runzeo).
		if st.StalePid != 0 && syscall.Kill(st.StalePid, 0) == syscall.ESRCH {
			os.Remove(c.PidFile)
		}
		return StopResult{}, nil
	}
	res := StopResult{WasRunning: true, Pid: st.Pid}
	if err := syscall.Kill(st.Pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return res, fmt.Errorf("sending SIGTERM to %d: %w", st.Pid, err)
	}
	if !c.waitGone(st.Pid, c.StopTimeout) {
		res.Killed = true
		if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return res, fmt.Errorf("sending SIGKILL to %d: %w", st.Pid, err)
		}
		if !c.waitGone(st.Pid, 10*time.Second) {
			return res, fmt.Errorf("process %d survives SIGKILL", st.Pid)
		}
	}
	if c.readPid() == st.Pid {
		os.Remove(c.PidFile)
	}
	// The kernel may release a dead process's listening socket a moment
	// later; wait for it so that a restart can bind the address again.
	for deadline := time.Now().Add(5 * time.Second); c.accepting() && time.Now().Before(deadline); {
		time.Sleep(c.Poll)
	}
	return res, nil
}

func (c *Controller) waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(c.Poll)
	}
	return true
}

// Signal sends sig to the running server and returns its pid.
func (c *Controller) Signal(sig syscall.Signal) (int, error) {
	st := c.Status()
	if !st.Running {
		return 0, errNotRunning
	}
	if err := syscall.Kill(st.Pid, sig); err != nil {
		return st.Pid, fmt.Errorf("kill(%d, %d): %w", st.Pid, int(sig), err)
	}
	return st.Pid, nil
}

// errNotRunning: there is no server to signal.
var errNotRunning = errors.New("daemon process not running")

// IsNotRunning reports whether err says the server is not running.
func IsNotRunning(err error) bool { return errors.Is(err, errNotRunning) }

// Foreground runs the server attached to the given output, forwarding
// SIGINT, SIGTERM, SIGHUP and SIGUSR2 to it, and returns its exit status.
func (c *Controller) Foreground(stdout, stderr io.Writer) (int, error) {
	if st := c.Status(); st.Running {
		return 0, ErrAlreadyRunning
	}
	cmd := exec.Command(c.Command[0], c.Command[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", c.Command[0], err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}
