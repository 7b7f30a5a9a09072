package commands

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/mkinstance"
)

// zeoctlServeCommand is the argv that starts the server of conf; tests
// replace it with a stub listener.
var zeoctlServeCommand = func(conf string, passOn []string) ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return append([]string{exe, "serve", "-C", conf}, passOn...), nil
}

func init() {
	register(&cli.Command{
		Name:      "zeoctl",
		Usage:     "start, stop and inspect the ZEO server of an instance (bin/zeoctl)",
		ArgsUsage: "start|stop|restart|status|foreground|kill [SIG]|logreopen",
		Description: `zeoctl -C etc/zeo.conf COMMAND controls "zodbctl serve -C etc/zeo.conf".
Replaces zdaemon's zdctl without a supervisor process: start runs the server in
its own session, writes its pid to pid-filename (else $INSTANCE/var/ZEO.pid),
appends its output to the <runner> transcript (else the <eventlog> log file) and
waits until the address accepts connections (<runner> start-timeout). The server
is not restarted if it dies; use a systemd unit (mkzeoinstance --systemd) for that.

  start       "daemon process started, pid=N" and "listening on ADDRESS";
              "daemon process already running; pid=N" if it runs
  stop        SIGTERM, then SIGKILL after <runner> stop-timeout (reported);
              "daemon process stopped"
  restart     stop, then start: "daemon process restarted, pid=N"
  status      "program running; pid=N" and the address (exit 0), or
              "daemon manager not running" (exit 3)
  foreground  run the server attached to this terminal (also: fg)
  kill [SIG]  send a signal (default TERM): "signal SIGTERM sent to process N"
  logreopen   send SIGUSR2 (the server reopens its log files)

Messages are zdctl's where zdctl has one, so scripts that read them keep working.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "configure", Aliases: []string{"C"}, Usage: "the instance's zeo.conf", TakesFile: true},
			&cli.StringSliceFlag{Name: "X", Usage: "`NAME=VALUE` define or SECTION/KEY=VALUE override, passed on to serve"},
			&cli.StringSliceFlag{Name: "define", Usage: "`NAME=VALUE` predefines $NAME, passed on to serve"},
		},
		Action: zeoctlAction,
	})
}

func zeoctlAction(c *cli.Context) error {
	out := c.App.Writer
	if c.NArg() == 0 {
		return usageError("zeoctl: want a command: start, stop, restart, status, foreground, kill, logreopen")
	}
	action := c.Args().First()
	sig := syscall.SIGTERM
	switch action {
	case "start", "stop", "restart", "status", "foreground", "fg", "logreopen":
		if c.NArg() > 1 {
			return usageError("zeoctl: %s takes no argument", action)
		}
	case "kill":
		if c.NArg() > 2 {
			return usageError("zeoctl: kill takes one signal")
		}
		if c.NArg() == 2 {
			s, ok := signalByName(c.Args().Get(1))
			if !ok {
				return usageError("zeoctl: kill: unknown signal %q", c.Args().Get(1))
			}
			sig = s
		}
	default:
		return usageError("zeoctl: unknown command %q (start, stop, restart, status, foreground, kill, logreopen)", action)
	}
	conf := c.String("configure")
	if conf == "" {
		return usageError("zeoctl: no configuration; use -C etc/zeo.conf")
	}
	opts, err := loadOptions(c)
	if err != nil {
		return usageError("zeoctl: %v", err)
	}
	cfg, err := mkinstance.LoadServerConfig(conf, opts)
	if err != nil {
		return usageError("zeoctl: %v", err)
	}
	var passOn []string
	for _, x := range c.StringSlice("X") {
		passOn = append(passOn, "-X", x)
	}
	for _, x := range c.StringSlice("define") {
		passOn = append(passOn, "--define", x)
	}
	// The server runs in the instance folder: give it an absolute path.
	if abs, err := filepath.Abs(conf); err == nil {
		conf = abs
	}
	argv, err := zeoctlServeCommand(conf, passOn)
	if err != nil {
		return exitWith(ExitFailure, "zodbctl: zeoctl: %v", err)
	}
	ctl := mkinstance.NewController(cfg, argv)
	fail := func(err error) error { return exitWith(ExitFailure, "zodbctl: zeoctl: %s: %v", action, err) }

	switch action {
	case "status":
		st := ctl.Status()
		if !st.Running {
			fmt.Fprintln(out, "daemon manager not running")
			if st.Listening {
				fmt.Fprintf(out, "but something accepts connections on %s\n", st.Address.DialAddr())
			}
			return exitWith(ExitNotFound, "")
		}
		fmt.Fprintf(out, "program running; pid=%d\n", st.Pid)
		if st.Listening {
			fmt.Fprintf(out, "listening on %s\n", st.Address.DialAddr())
		} else {
			fmt.Fprintf(out, "not accepting connections on %s\n", st.Address.DialAddr())
		}
	case "start":
		st, err := ctl.Start()
		if errors.Is(err, mkinstance.ErrAlreadyRunning) {
			fmt.Fprintf(out, "daemon process already running; pid=%d\n", st.Pid)
			return nil
		}
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(out, "daemon process started, pid=%d\n", st.Pid)
		reportListening(c, st)
	case "stop":
		if err := zeoctlStop(c, ctl); err != nil {
			return fail(err)
		}
	case "restart":
		if err := zeoctlStop(c, ctl); err != nil {
			return fail(err)
		}
		st, err := ctl.Start()
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(out, "daemon process restarted, pid=%d\n", st.Pid)
		reportListening(c, st)
	case "kill", "logreopen":
		if action == "logreopen" {
			sig = syscall.SIGUSR2
		}
		pid, err := ctl.Signal(sig)
		if mkinstance.IsNotRunning(err) {
			fmt.Fprintln(out, "daemon process not running")
			return exitWith(ExitFailure, "")
		}
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(out, "signal %s sent to process %d\n", signalName(sig), pid)
	case "foreground", "fg":
		code, err := ctl.Foreground(out, c.App.ErrWriter)
		if errors.Is(err, mkinstance.ErrAlreadyRunning) {
			return exitWith(ExitFailure, "zodbctl: zeoctl: daemon process already running; pid=%d", ctl.Status().Pid)
		}
		if err != nil {
			return fail(err)
		}
		return exitWith(code, "")
	}
	return nil
}

var signalNames = map[string]syscall.Signal{"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL,
	"INT": syscall.SIGINT, "HUP": syscall.SIGHUP, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
	"QUIT": syscall.SIGQUIT}

// signalByName accepts TERM, SIGTERM or a number, as zdctl's kill does.
func signalByName(s string) (syscall.Signal, bool) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), true
	}
	sig, ok := signalNames[strings.TrimPrefix(strings.ToUpper(s), "SIG")]
	return sig, ok
}

func signalName(sig syscall.Signal) string {
	for name, s := range signalNames {
		if s == sig {
			return "SIG" + name
		}
	}
	return strconv.Itoa(int(sig))
}

func reportListening(c *cli.Context, st mkinstance.Status) {
	if st.Listening {
		fmt.Fprintf(c.App.Writer, "listening on %s\n", st.Address.DialAddr())
	} else {
		fmt.Fprintf(c.App.Writer, "running; address %s has no port to check\n", st.Address)
	}
}

func zeoctlStop(c *cli.Context, ctl *mkinstance.Controller) error {
	res, err := ctl.Stop()
	if err != nil {
		return err
	}
	if !res.WasRunning {
		fmt.Fprintln(c.App.Writer, "daemon manager not running")
		return nil
	}
	if res.Killed {
		fmt.Fprintf(c.App.Writer, "daemon process %d did not stop within %s of SIGTERM; sent SIGKILL\n", res.Pid, ctl.StopTimeout)
	}
	fmt.Fprintln(c.App.Writer, "daemon process stopped")
	return nil
}
