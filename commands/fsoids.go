package commands

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/analysis"
)

func init() {
	register(&cli.Command{
		Name:      "fsoids",
		Usage:     "trace every appearance of some oids: revisions, references from and to them (fsoids.py)",
		ArgsUsage: "FILE OID... | -f OIDFILE FILE",
		Description: `Prints what ZODB's fsoids.py prints: for each oid, its revisions, undone
creations, the objects it references and the objects that reference it,
grouped by transaction.

OIDs use Python's int(text, 0) syntax: 31, 0x1f, 0o37, 0b11111. -f reads
one oid per line from OIDFILE (blank lines are skipped), in addition to
those on the command line.

Difference from fsoids.py on Python 3 (what it meant to do): an oid that is
referenced but has no data record makes Python die sorting its messages;
zodbctl lists its "not defined" line first, as Python 2 did.

--json writes JSON Lines instead, one object per message in report order:
oid (16 hex digits), class (of its last revision, or "<unknown>"),
revisions, tid (16 hex digits; null for "not defined"), txn_offset, user,
description (plus user_base64 / description_base64 with the exact bytes when
they are not valid UTF-8), message.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "f", Usage: "read oids from `OIDFILE`, one per line"},
			&cli.BoolFlag{Name: "json", Usage: "write JSON Lines (fields in the description)"},
		},
		Action: runFsoids,
	})
}

func runFsoids(c *cli.Context) error {
	if c.NArg() < 1 {
		return usageError("fsoids: expected FILE and at least one OID (or -f OIDFILE)")
	}
	path := c.Args().First()
	var oids []fsformat.Oid
	for _, a := range c.Args().Slice()[1:] {
		o, err := analysis.ParsePyInt(a)
		if err != nil {
			return usageError("fsoids: %v", err)
		}
		oids = append(oids, o)
	}
	if name := c.String("f"); name != "" {
		fromFile, err := readOidFile(name)
		if err != nil {
			return exitWith(ExitFailure, "fsoids: %v", err)
		}
		oids = append(oids, fromFile...)
	}
	if len(oids) == 0 {
		return usageError("fsoids: no oids specified")
	}
	f, err := fsformat.Open(path)
	if err != nil {
		return exitWith(ExitFailure, "fsoids: %v", err)
	}
	defer f.Close()
	tr, err := analysis.TraceOids(f, oids, func(msg string) { io.WriteString(c.App.ErrWriter, msg+"\n") })
	if err != nil {
		return exitWith(ExitFailure, "fsoids: %v", err)
	}
	if c.Bool("json") {
		err = tr.WriteJSON(c.App.Writer)
	} else {
		err = tr.Report(c.App.Writer)
	}
	if err != nil {
		return exitWith(ExitFailure, "fsoids: %v", err)
	}
	return nil
}

func readOidFile(name string) ([]fsformat.Oid, error) {
	fd, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	var oids []fsformat.Oid
	sc := bufio.NewScanner(fd)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		o, err := analysis.ParsePyInt(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		oids = append(oids, o)
	}
	return oids, sc.Err()
}
