package commands

import (
	"errors"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/analysis"
)

func init() {
	register(&cli.Command{
		Name:      "analyze",
		Usage:     "object counts and sizes per class, current and old revisions (analyze.py)",
		ArgsUsage: "FILE",
		Description: `Prints what ZODB's analyze.py prints: the number of records and
transactions, and per class the number of objects, their bytes and average
size, then totals for current and old revisions.

Differences from analyze.py (what it meant to do): a file without data
records makes Python divide by zero after the first line; zodbctl prints that
line and exits 0.

--json writes JSON Lines instead: one {"type":"class", class, count, bytes}
per class (sorted by name), then {"type":"summary", transactions, records,
bytes, current_objects, current_bytes, old_objects, old_bytes}. Records whose
class pickle cannot be read come first as {"type":"error", oid (16 hex
digits), pos, error}.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "write JSON Lines (fields in the description)"},
		},
		Action: runAnalyze,
	})
}

func runAnalyze(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("analyze: expected one FILE")
	}
	f, err := fsformat.Open(c.Args().First())
	if err != nil {
		return exitWith(ExitFailure, "analyze: %v", err)
	}
	defer f.Close()
	a, err := analysis.Analyze(f, func(msg string) { io.WriteString(c.App.ErrWriter, msg+"\n") })
	if err != nil {
		return exitWith(ExitFailure, "analyze: %v", err)
	}
	if c.Bool("json") {
		err = a.WriteJSON(c.App.Writer)
	} else {
		err = a.Report(c.App.Writer)
	}
	if err != nil && !errors.Is(err, analysis.ErrNoRecords) {
		return exitWith(ExitFailure, "analyze: %v", err)
	}
	return nil
}
