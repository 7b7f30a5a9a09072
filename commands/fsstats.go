package commands

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/analysis"
)

func init() {
	register(&cli.Command{
		Name:      "fsstats",
		Usage:     "statistics on transactions, objects and revisions (fsstats.py)",
		ArgsUsage: "FILE | -",
		Description: `Prints what ZODB's fsstats.py prints for the fsdump output of a Data.fs:
transaction sizes, object sizes, revisions per object and per class.

FILE is a Data.fs (read directly, no fsdump needed) or a file of fsdump text
as fsstats.py takes it; "-" reads fsdump text from standard input.

Differences from fsstats.py on Python 3 (what it meant to do): when a
histogram bin holds 40 or more entries Python dies with a TypeError; zodbctl
prints int(n // dot) stars, like the [py3fix] outputs. With no transaction at
all Python dies in median(); zodbctl prints the summary and stops (exit 0).

--json writes JSON Lines instead: {"type":"summary", txns, objects,
revisions}; one {"type":"histogram", name, total, median, mean, mode, max,
binsize, bins} per histogram of the text report (bins: the non-empty bins as
[start, count] pairs); one {"type":"class", class, num, median, mean, mode}
per class.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "write JSON Lines (fields in the description)"},
		},
		Action: runFsstats,
	})
}

func runFsstats(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("fsstats: expected one FILE (a Data.fs, fsdump text, or - for fsdump text on stdin)")
	}
	name := c.Args().First()
	stats, err := loadFsstats(c, name)
	if err != nil {
		return exitWith(ExitFailure, "fsstats: %v", err)
	}
	if c.Bool("json") {
		err = stats.WriteJSON(c.App.Writer)
	} else {
		err = stats.Report(c.App.Writer)
	}
	if err != nil && !errors.Is(err, analysis.ErrNoTransactions) {
		return exitWith(ExitFailure, "fsstats: %v", err)
	}
	return nil
}

// loadFsstats reads fsdump text from stdin ("-") or a file, or iterates a
// Data.fs (recognised by its magic).
func loadFsstats(c *cli.Context, name string) (*analysis.Stats, error) {
	stats := analysis.NewStats()
	if name == "-" {
		in := c.App.Reader
		if in == nil {
			in = os.Stdin
		}
		return stats, stats.ParseFsdump(in)
	}
	fd, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	br := bufio.NewReaderSize(fd, 1<<20)
	magic, _ := br.Peek(4)
	if !bytes.Equal(magic, fsformat.MagicFS30[:]) && !bytes.Equal(magic, fsformat.MagicFS21[:]) {
		if err := stats.ParseFsdump(br); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return stats, nil
	}
	f, err := fsformat.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	stats, err = analysis.FsstatsFile(f, func(msg string) { io.WriteString(c.App.ErrWriter, msg+"\n") })
	if err != nil {
		return nil, err
	}
	return stats, nil
}
