// Package commands holds the zodbctl subcommands, one thin file each: flags →
// one library call (fsformat, zeowire, mkinstance) → rendering (text, table,
// JSON) and the exit status. Each file registers its command in init, so
// adding a command touches no shared list.
//
// Commands write only to c.App.Writer and c.App.ErrWriter (never os.Stdout), so
// the golden tests run them in-process with buffers.
package commands

import (
	"errors"
	"fmt"
	"github.com/fatih/color"
	"io"
	"sort"

	"github.com/urfave/cli/v2"
)

// Exit statuses shared by all commands. Tools that mimic a Python script keep
// that script's statuses (fstest exits 1 on a damaged file, for example).
const (
	ExitOK       = 0
	ExitFailure  = 1 // the check failed / the operation failed
	ExitUsage    = 2 // bad flags or arguments
	ExitNotFound = 3 // service scripts: not running
)

var registry []*cli.Command

// register adds a subcommand; called from each command file's init.
func register(c *cli.Command) { registry = append(registry, c) }

// All returns every subcommand, sorted by name.
func All() []*cli.Command {
	cmds := append([]*cli.Command(nil), registry...)
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	return cmds
}

// NewApp builds the zodbctl application writing to stdout and stderr.
func NewApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "zodbctl",
		Usage:     "administer ZODB FileStorage databases and ZEO servers",
		Commands:  All(),
		Writer:    stdout,
		ErrWriter: stderr,
		// Exit statuses are decided in Run, not by cli calling os.Exit.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return usageError("%v", err)
		},
		HideVersion: true,
		// Without this, cli answers an unknown command with "No help topic"
		// and exit status 3 (ExitNotFound means "not running" here).
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("unknown command %q (zodbctl --help lists them)", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
}

// Run runs zodbctl with args (args[0] is the program name) and returns the
// exit status. Errors are printed as one line on stderr.
func Run(args []string, stdout, stderr io.Writer) int {
	app := NewApp(stdout, stderr)
	err := app.Run(args)
	if err == nil {
		return ExitOK
	}
	// Errors are red on a terminal (never with NO_COLOR, never in a pipe).
	on := colorsFor(stderr)
	var coder cli.ExitCoder
	if errors.As(err, &coder) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(stderr, paint(on, msg, color.FgRed))
		}
		return coder.ExitCode()
	}
	fmt.Fprintln(stderr, paint(on, "zodbctl: "+err.Error(), color.FgRed))
	return ExitFailure
}

// exitError carries a message for stderr and an exit status. An empty
// message prints nothing (the command already wrote its output).
type exitError struct {
	msg  string
	code int
}

func (e *exitError) Error() string { return e.msg }
func (e *exitError) ExitCode() int { return e.code }

// exitWith returns an error that makes Run print msg (if not empty) and exit
// with code.
func exitWith(code int, format string, a ...any) error {
	return &exitError{msg: fmt.Sprintf(format, a...), code: code}
}

// usageError reports bad arguments: "zodbctl: …" and exit status 2.
func usageError(format string, a ...any) error {
	return &exitError{msg: "zodbctl: " + fmt.Sprintf(format, a...), code: ExitUsage}
}
