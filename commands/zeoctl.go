package commands

import (
	"errors"
	"fmt"
	"os"

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
		ArgsUsage: "start|stop|restart|status|foreground",
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
	if c.NArg() != 1 {
		return usageError("zeoctl: want one command: start, stop, restart, status or foreground")
	}
	action := c.Args().First()
	switch action {
	case "start", "stop", "restart", "status", "foreground", "fg":
	default:
		return usageError("zeoctl: unknown command %q (start, stop, restart, status, foreground)", action)
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
