package commands

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/analysis"
	"github.com/zodbctl/zodbctl/fsformat/pyrepr"
)

func init() {
	register(&cli.Command{
		Name:      "fsrefs",
		Usage:     "find objects whose current revision refers to missing or unloadable objects (fsrefs.py)",
		ArgsUsage: "FILE",
		Description: `Prints what ZODB's fsrefs.py prints: for every object whose current
revision holds a (local, strong) reference to an oid that is not in the
index ("missing"), whose creation was undone, or that fails to load, a report
naming the object, its class, the tid that last changed it, and each bad
reference. The exit status is 0 whatever is found, as with fsrefs.py;
with --strict it is 1 when a bad reference was reported (for scripts and
monitoring: zodbctl fsrefs --strict Data.fs >report || alert).

Opening checks the file as FileStorage does: its warnings (time-stamp
reduction, invalid status, incorrect previous pointer) go to stderr; damage
FileStorage refuses to open is one error line, exit 1.

-v also prints why each unloadable object failed, on stderr.

--json writes JSON Lines instead, one object per bad reference: oid, class,
tid (16 hex digits), ref (16 hex digits), reason ("missing", "failed to
load", "object creation was undone"), ref_class.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "v", Usage: "report why objects fail to load (stderr)"},
			&cli.BoolFlag{Name: "json", Usage: "write JSON Lines (fields in the description)"},
			&cli.BoolFlag{Name: "strict", Usage: "exit 1 when a bad reference is found (fsrefs.py exits 0)"},
		},
		Action: runFsrefs,
	})
}

func runFsrefs(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("fsrefs: expected one FILE")
	}
	errw := c.App.ErrWriter
	cur, err := analysis.OpenCurrent(c.Args().First(), func(msg string) { io.WriteString(errw, msg+"\n") })
	if err != nil {
		return exitWith(ExitFailure, "%s", openErrorText(err))
	}
	defer cur.Close()
	w := bufio.NewWriterSize(c.App.Writer, 1<<16)
	jl := newJSONLines(c.App.Writer) // flushed per line, like every --json
	var line []byte
	broken := 0
	err = analysis.CheckRefs(cur, func(f analysis.LoadFailure) {
		if c.Bool("v") {
			fmt.Fprintf(errw, "oid %s failed to load: %v\n", f.Oid.Repr(), f.Err)
		}
	}, func(o *analysis.BrokenObject) error {
		broken++
		if c.Bool("json") {
			for _, r := range o.Refs {
				if err := jl.Write(struct {
					Oid      string `json:"oid"`
					Class    string `json:"class"`
					Tid      string `json:"tid"`
					Ref      string `json:"ref"`
					Reason   string `json:"reason"`
					RefClass string `json:"ref_class"`
				}{o.Oid.String(), o.Class, o.Tid.String(), r.Oid.String(), r.Reason, r.Class}); err != nil {
					return err
				}
			}
			return nil
		}
		plural := ""
		if len(o.Refs) > 1 {
			plural = "s"
		}
		line = fmt.Appendf(line[:0], "oid %s %s\nlast updated: %s, tid=%s\nrefers to invalid object%s:\n",
			o.Oid.PyHex(), o.Class, o.Tid.Time(), o.Tid.PyHex(), plural)
		for _, r := range o.Refs {
			line = fmt.Appendf(line, "\toid %s %s: %s\n", r.Oid.Repr(), r.Reason, pyrepr.UnicodeStr(r.Class))
		}
		line = append(line, '\n')
		_, err := w.Write(line)
		return err
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return exitWith(ExitFailure, "fsrefs: %v", err)
	}
	if broken > 0 && c.Bool("strict") {
		return exitWith(ExitFailure, "fsrefs: %d object(s) with bad references", broken)
	}
	return nil
}

// openErrorText gives FileStorage's own message for damage found while
// opening (what Python logs before its traceback), else the error.
func openErrorText(err error) string {
	var fe *fsformat.FormatError
	if errors.As(err, &fe) && strings.Contains(fe.Msg, fe.File) {
		return fe.Msg
	}
	return err.Error()
}
