package commands

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/mkinstance"
)

// zeoctlStubEnv makes the test binary, re-executed by zeoctl start, act as
// a server: "1" listens and exits 0 on SIGTERM, "ignore-term" ignores
// SIGTERM, "fail" exits 2 at once. The real server comes with `serve`.
const zeoctlStubEnv = "ZODBCTL_ZEOCTL_STUB"

// TestZeoctlHelperServer is not a test: it is the stub server process.
func TestZeoctlHelperServer(t *testing.T) {
	mode := os.Getenv(zeoctlStubEnv)
	if mode == "" {
		t.Skip("helper process for the zeoctl tests")
	}
	var conf string
	var opts mkinstance.Options
	for i, a := range os.Args[:len(os.Args)-1] {
		switch v := os.Args[i+1]; a {
		case "-C":
			conf = v
		case "-X":
			name, value, _ := strings.Cut(v, "=")
			opts.Overrides = append(opts.Overrides, mkinstance.Override{Path: name, Value: value})
		}
	}
	if mode == "fail" {
		fmt.Fprintln(os.Stderr, "stub: failing on purpose")
		os.Exit(2)
	}
	cfg, err := mkinstance.LoadServerConfig(conf, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	go func() {
		for range usr2 {
			fmt.Println("stub: SIGUSR2")
		}
	}()
	if mode == "ignore-term" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		go func() {
			<-term
			fmt.Println("stub: terminated by SIGTERM")
			os.Exit(0)
		}()
	}
	ln, err := net.Listen(cfg.ZEO.Address.Network(), cfg.ZEO.Address.ListenAddr())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("stub: listening on", ln.Addr())
	for {
		conn, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		conn.Close()
	}
}

// stubServeCommand starts the stub server instead of `zodbctl serve`. The
// stub starts in the package folder (test files here read testdata
// relative to it at init), then execs the test binary.
func stubServeCommand(pkgDir string) func(string, []string) ([]string, error) {
	return func(conf string, passOn []string) ([]string, error) {
		return append([]string{"/bin/sh", "-c", `cd "$1" && shift && exec "$@"`, "sh", pkgDir,
			os.Args[0], "-test.run=^TestZeoctlHelperServer$", "--", "serve", "-C", conf}, passOn...), nil
	}
}

// zodbctlMainEnv makes the test binary act as the zodbctl binary (with the
// stub server), so the generated bin/ scripts can be run for real.
const zodbctlMainEnv = "ZODBCTL_TEST_MAIN"

// zodbctlRealServeEnv makes that helper start the real server instead of
// the stub.
const zodbctlRealServeEnv = "ZODBCTL_TEST_REAL_SERVE"

// TestZodbctlMainHelper is not a test: it is zodbctl's main for the scripts.
func TestZodbctlMainHelper(t *testing.T) {
	if os.Getenv(zodbctlMainEnv) == "" {
		t.Skip("helper process for the bin/zeoctl test")
	}
	var args []string
	for i, a := range os.Args {
		if a == "--" {
			args = os.Args[i+1:]
			break
		}
	}
	if os.Getenv(zodbctlRealServeEnv) != "" {
		zeoctlServeCommand = func(conf string, passOn []string) ([]string, error) {
			return append([]string{os.Args[0], "-test.run=^TestZodbctlMainHelper$", "--", "serve", "-C", conf}, passOn...), nil
		}
	} else {
		pkgDir, _ := os.Getwd()
		zeoctlServeCommand = stubServeCommand(pkgDir)
	}
	os.Exit(Run(append([]string{"zodbctl"}, args...), os.Stdout, os.Stderr))
}

func zeoctlRun(args ...string) (string, string, int) {
	var o, e bytes.Buffer
	code := Run(append([]string{"zodbctl", "zeoctl"}, args...), &o, &e)
	return o.String(), e.String(), code
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestZeoctlStartStatusStop(t *testing.T) {
	old := zeoctlServeCommand
	defer func() { zeoctlServeCommand = old }()
	pkgDir, _ := os.Getwd()
	zeoctlServeCommand = stubServeCommand(pkgDir)
	t.Setenv(zeoctlStubEnv, "1")

	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	home := filepath.Join(t.TempDir(), "inst")
	if _, stderr, code := mkzRun(home, addr, "--storage", "1=Data1.fs", "--storage", "2=Data2.fs"); code != 0 {
		t.Fatal(stderr)
	}
	conf := filepath.Join(home, "etc", "zeo.conf")
	pidFile := filepath.Join(home, "var", "ZEO.pid")
	check := func(what string, args []string, wantCode int, wantOut string) string {
		t.Helper()
		out, errOut, code := zeoctlRun(append([]string{"-C", conf}, args...)...)
		if code != wantCode || !strings.HasPrefix(out, wantOut) {
			log, _ := os.ReadFile(filepath.Join(home, "log", "zeo.log"))
			t.Logf("log:\n%s", log)
			t.Fatalf("%s: exit %d stdout %q stderr %q, want %d %q", what, code, out, errOut, wantCode, wantOut)
		}
		return out + errOut
	}
	defer zeoctlRun("-C", conf, "-X", "runner/stop-timeout=1", "stop") // no stray server if the test fails
	check("status before", []string{"status"}, 3, "daemon manager not running\n")

	out := check("start", []string{"start"}, 0, "daemon process started, pid=")
	var pid int
	fmt.Sscanf(out, "daemon process started, pid=%d\n", &pid)
	if want := fmt.Sprintf("daemon process started, pid=%d\nlistening on %s\n", pid, addr); out != want {
		t.Fatalf("start: %q, want %q", out, want)
	}
	if data, _ := os.ReadFile(pidFile); string(data) != strconv.Itoa(pid)+"\n" {
		t.Errorf("pid file holds %q", data)
	}
	check("status running", []string{"status"}, 0, fmt.Sprintf("program running; pid=%d\nlistening on %s\n", pid, addr))
	check("start again", []string{"start"}, 0, fmt.Sprintf("daemon process already running; pid=%d\n", pid))
	check("logreopen", []string{"logreopen"}, 0, fmt.Sprintf("signal SIGUSR2 sent to process %d\n", pid))
	logFile := filepath.Join(home, "log", "zeo.log")
	for i := 0; i < 100; i++ {
		if log, _ := os.ReadFile(logFile); strings.Contains(string(log), "stub: SIGUSR2") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if log, _ := os.ReadFile(logFile); !strings.Contains(string(log), "stub: SIGUSR2") {
		t.Errorf("SIGUSR2 not delivered: %q", log)
	}
	check("stop", []string{"stop"}, 0, "daemon process stopped\n")
	if _, err := os.Stat(pidFile); err == nil {
		t.Errorf("pid file left behind")
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Errorf("still listening after stop")
	}
	check("status after", []string{"status"}, 3, "daemon manager not running\n")
	check("stop again", []string{"stop"}, 0, "daemon manager not running\n")
	check("kill when stopped", []string{"kill", "HUP"}, 1, "daemon process not running\n")
	if log, _ := os.ReadFile(filepath.Join(home, "log", "zeo.log")); !strings.Contains(string(log), "stub: terminated by SIGTERM") {
		t.Errorf("server output not in the log file: %q", log)
	}

	// restart from stopped, then a server that ignores SIGTERM is killed.
	check("restart", []string{"restart"}, 0, "daemon manager not running\ndaemon process restarted, pid=")
	check("stop", []string{"stop"}, 0, "daemon process stopped\n")
	t.Setenv(zeoctlStubEnv, "ignore-term")
	check("start stubborn", []string{"start"}, 0, "daemon process started")
	start := time.Now()
	out = check("stop stubborn", []string{"-X", "runner/stop-timeout=1", "stop"}, 0, "daemon process ")
	if !strings.Contains(out, "did not stop within 1s of SIGTERM; sent SIGKILL\ndaemon process stopped\n") || time.Since(start) > 8*time.Second {
		t.Errorf("stop stubborn: %q after %s", out, time.Since(start))
	}

	// A port in use and a server that dies at once are reported.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := zeoctlRun("-C", conf, "start")
	ln.Close()
	if code != 1 || out != "" || errOut != "zodbctl: zeoctl: start: address ('127.0.0.1', "+strconv.Itoa(port)+") already in use\n" {
		t.Errorf("port in use: %d %q %q", code, out, errOut)
	}
	t.Setenv(zeoctlStubEnv, "fail")
	out, errOut, code = zeoctlRun("-C", conf, "start")
	if code != 1 || errOut != "zodbctl: zeoctl: start: server exited before accepting connections (exit status 2); see "+home+"/log/zeo.log\n" {
		t.Errorf("failing server: %d %q %q", code, out, errOut)
	}
	if _, err := os.Stat(pidFile); err == nil {
		t.Errorf("pid file left behind by a failed start")
	}
	// foreground: the server's output and exit status come through.
	out, errOut, code = zeoctlRun("-C", conf, "foreground")
	if code != 2 || out != "" || errOut != "stub: failing on purpose\n" {
		t.Errorf("foreground: %d %q %q", code, out, errOut)
	}
}

// A Unix-socket address (set with a -X override that zeoctl passes on).
func TestZeoctlUnixSocket(t *testing.T) {
	old := zeoctlServeCommand
	defer func() { zeoctlServeCommand = old }()
	pkgDir, _ := os.Getwd()
	zeoctlServeCommand = stubServeCommand(pkgDir)
	t.Setenv(zeoctlStubEnv, "1")
	home, err := os.MkdirTemp("", "zc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	if _, stderr, code := mkzRun(home, "1"); code != 0 {
		t.Fatal(stderr)
	}
	sock := filepath.Join(home, "var", "zeo.sock")
	// A relative -C works although the server runs in the instance folder.
	rel, err := filepath.Rel(pkgDir, filepath.Join(home, "etc", "zeo.conf"))
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-C", rel, "-X", "zeo/address=" + sock}
	out, errOut, code := zeoctlRun(append(args, "start")...)
	if code != 0 || !strings.HasSuffix(out, "listening on "+sock+"\n") {
		t.Fatalf("start: %d %q %q", code, out, errOut)
	}
	out, _, code = zeoctlRun(append(args, "kill", "SIGTERM")...)
	if code != 0 || !strings.HasPrefix(out, "signal SIGTERM sent to process ") {
		t.Errorf("kill: %d %q", code, out)
	}
	for i := 0; i < 100; i++ {
		if _, _, code = zeoctlRun(append(args, "status")...); code == 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != 3 {
		t.Errorf("still running after kill")
		zeoctlRun(append(args, "stop")...)
	}
}

// A generated two-storage instance starts, reports and stops through its
// own bin/zeoctl script (the scripts run the test binary as zodbctl, and
// the server is the stub until `serve` exists).
func TestGeneratedInstanceScripts(t *testing.T) {
	t.Setenv(zeoctlStubEnv, "1")
	testGeneratedInstance(t, nil)
}

// TestGeneratedInstanceRealServer starts a generated two-storage instance
// with its bin/zeoctl running the real zodbctl serve, commits to both
// storages through the admin client, and stops it.
func TestGeneratedInstanceRealServer(t *testing.T) {
	t.Setenv(zodbctlRealServeEnv, "1")
	testGeneratedInstance(t, func(t *testing.T, home, addr string) {
		for _, storage := range []string{"1", "2"} {
			var out, errb bytes.Buffer
			if code := Run([]string{"zodbctl", "connect", "-s", addr, "-S", storage, "check"}, &out, &errb); code != 0 {
				t.Fatalf("connect check of storage %s: exit %d: %s%s", storage, code, out.String(), errb.String())
			}
		}
	})
}

// testGeneratedInstance creates a two-storage instance whose scripts run
// the test binary as zodbctl, and drives it with bin/runzeo and bin/zeoctl;
// whileRunning (if any) is called between start and stop.
func testGeneratedInstance(t *testing.T, whileRunning func(t *testing.T, home, addr string)) {
	t.Setenv(zodbctlMainEnv, "1")
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "zodbctl")
	os.WriteFile(wrapper, []byte("#!/bin/sh\nexec '"+os.Args[0]+"' -test.run='^TestZodbctlMainHelper$' -- \"$@\"\n"), 0o755)
	home := filepath.Join(dir, "inst")
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	err := mkinstance.Create(mkinstance.InstanceOptions{Home: home, Address: addr, Executable: wrapper,
		Storages: []mkinstance.StorageSpec{{Name: "1", Path: "Data1.fs"}, {Name: "2", Path: "Data2.fs"}}})
	if err != nil {
		t.Fatal(err)
	}
	script := func(name string, args ...string) (string, int) {
		cmd := exec.Command(filepath.Join(home, "bin", name), args...)
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	defer script("zeoctl", "stop") // no stray server if the test fails
	if out, code := script("runzeo", "--check"); code != 0 || !strings.Contains(out, "storage 2 filestorage path="+home+"/var/Data2.fs") {
		t.Fatalf("runzeo --check: %d %q", code, out)
	}
	if out, code := script("zeoctl", "status"); code != 3 || out != "daemon manager not running\n" {
		t.Fatalf("status: %d %q", code, out)
	}
	out, code := script("zeoctl", "start")
	if code != 0 || !strings.HasPrefix(out, "daemon process started, pid=") || !strings.HasSuffix(out, "listening on "+addr+"\n") {
		t.Fatalf("start: %d %q", code, out)
	}
	if out, code := script("zeoctl", "status"); code != 0 || !strings.HasPrefix(out, "program running; pid=") {
		t.Errorf("status: %d %q", code, out)
	}
	if whileRunning != nil {
		whileRunning(t, home, addr)
	}
	if out, code := script("zeoctl", "stop"); code != 0 || out != "daemon process stopped\n" {
		t.Errorf("stop: %d %q", code, out)
	}
	if out, code := script("zeoctl", "status"); code != 3 {
		t.Errorf("status after stop: %d %q", code, out)
	}
	if whileRunning != nil {
		for _, name := range []string{"Data1.fs", "Data2.fs"} {
			var out, errb bytes.Buffer
			if code := Run([]string{"zodbctl", "verify", filepath.Join(home, "var", name)}, &out, &errb); code != 0 {
				t.Errorf("verify %s after stop: exit %d: %s", name, code, errb.String())
			}
		}
	}
}

func TestZeoctlUsage(t *testing.T) {
	cases := [][]string{{"start"}, {"-C", "x.conf"}, {"-C", "x.conf", "bounce"}, {"-C", "x.conf", "kill", "NOPE"},
		{"-C", "x.conf", "status", "extra"}}
	for _, args := range cases {
		if _, errOut, code := zeoctlRun(args...); code != 2 || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: %d %q", args, code, errOut)
		}
	}
}
