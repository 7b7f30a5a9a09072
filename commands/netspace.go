package commands

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/fsformat/analysis"
)

func init() {
	register(&cli.Command{
		Name:      "netspace",
		Usage:     "net size of objects counting everything they reach (netspace.py)",
		ArgsUsage: "FILE",
		Description: `Prints what ZODB's netspace.py prints, one line per object in descending oid
order: the oid (decimal), its pickle size, the total size of everything
reachable from it through local strong references, the attribute path from
the root that names it ("-" if none; found from the pickled instance
dictionaries up to three levels below the root's items) and its class.

Without -v only objects with a path are listed; -v lists every object; -P
lists only what a pack with garbage collection would keep (objects reachable
from the root) — the file is not modified.

Differences from netspace.py on Python 3 (what it meant to do): without -v
and with -P Python always dies (dict.has_key, pack() without arguments); an
object without current data (deletion, undone creation) makes Python die
with POSKeyError — zodbctl skips it, names the skipped oids on stderr and
counts references to it for nothing; cross-database references (which stop
Python when one file of a multi-database is opened alone) and blobs (no
blob directory given) are not followed / need nothing here.

Cost: one pass over the file, then a search per group of objects that
reach the same set; chains and trees of single references are summed in
linear time, but, as with netspace.py, many objects each reaching a large
shared part of the database can take time quadratic in its size.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "v", Usage: "list every object, not only those with a path"},
			&cli.BoolFlag{Name: "P", Usage: "only objects a garbage-collecting pack would keep"},
		},
		Action: runNetspace,
	})
}

func runNetspace(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("netspace: expected one FILE")
	}
	errw := c.App.ErrWriter
	cur, err := analysis.OpenCurrent(c.Args().First(), func(msg string) { io.WriteString(errw, msg+"\n") })
	if err != nil {
		return exitWith(ExitFailure, "netspace: %s", openErrorText(err))
	}
	defer cur.Close()
	w := bufio.NewWriterSize(c.App.Writer, 1<<16)
	skipped, err := analysis.Netspace(cur, analysis.NetspaceOptions{All: c.Bool("v"), Reachable: c.Bool("P")},
		func(r *analysis.NetspaceRow) error {
			path := r.Path
			if path == "" {
				path = "-"
			}
			_, err := fmt.Fprintf(w, "%8s %5d %8d %s %s\n", strconv.FormatUint(uint64(r.Oid), 10), r.Size, r.Total, path, r.Class)
			return err
		})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return exitWith(ExitFailure, "netspace: %v", err)
	}
	if len(skipped) > 0 {
		names := make([]string, len(skipped))
		for i, o := range skipped {
			names[i] = o.Repr()
		}
		fmt.Fprintf(errw, "netspace: skipped %d object(s) without current data: %s\n", len(skipped), strings.Join(names, " "))
	}
	return nil
}
