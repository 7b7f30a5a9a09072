package commands

import (
	"bufio"
	"fmt"
	"github.com/fatih/color"
	"io"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/fsformat/analysis"
	"github.com/zodbctl/zodbctl/fsformat/refs"
)

func init() {
	register(&cli.Command{
		Name:      "xrefs",
		Usage:     "list and check cross-database references of a multi-database",
		ArgsUsage: "NAME=FILE [NAME=FILE...]",
		Description: `Lists every cross-database reference held by the current revision of each
object of the given databases — ['m', (db, oid, class)] and ['n', (db, oid)]
(strong) and ['w', (oid, db)] (weak) — and checks that each target exists in
the named database with data (not deleted, creation not undone). NAME is the
database name used in the references (the <zodb NAME> of the configuration),
e.g.  zodbctl xrefs 1=var/Data1.fs 2=var/Data2.fs

Columns: source database, source oid, source class, target database, target
oid, kind (strong/weak), status: "ok", "dangling" (the target is missing,
deleted or unloadable) or "unknown-db" (the target database was not given, so
it is not checked). A table on a terminal; tab-separated lines with a header
line when the output is not a terminal (or with --tsv). Oids are shown as
ZODB's oid_repr (0x01); --json writes JSON Lines with the fields db, oid,
class, target_db, target_oid (oids as 16 hex digits), kind ("strong"/"weak"),
dangling (true/false; null where the target database was not given), plus
target_class, tid and pos of the source record.

--all-revisions lists the references of every revision with data, not only
the current ones (targets are still checked against the current state).

Exit status: 0 when no strong reference dangles, 1 when one does (a weak
reference to a missing object is normal and only reported), 2 on usage
errors. References into databases not given are reported and counted on
stderr but do not change the status.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all-revisions", Usage: "include old revisions"},
			&cli.BoolFlag{Name: "json", Usage: "write JSON Lines (fields in the description)"},
			&cli.BoolFlag{Name: "tsv", Usage: "tab-separated output even on a terminal"},
		},
		Action: runXrefs,
	})
}

func runXrefs(c *cli.Context) error {
	if c.NArg() == 0 {
		return usageError("xrefs: expected NAME=FILE arguments, e.g. 1=Data1.fs 2=Data2.fs")
	}
	type arg struct{ name, path string }
	var args []arg
	seen := map[string]bool{}
	for _, a := range c.Args().Slice() {
		name, path, ok := strings.Cut(a, "=")
		if !ok || name == "" || path == "" {
			return usageError("xrefs: %q is not NAME=FILE", a)
		}
		if seen[name] {
			return usageError("xrefs: database %q given twice", name)
		}
		seen[name] = true
		args = append(args, arg{name, path})
	}
	errw := c.App.ErrWriter
	var dbs []*analysis.XrefDatabase
	for _, a := range args {
		cur, err := analysis.OpenCurrent(a.path, func(msg string) { io.WriteString(errw, msg+"\n") })
		if err != nil {
			return exitWith(ExitFailure, "xrefs: %s", openErrorText(err))
		}
		defer cur.Close()
		db, err := analysis.NewXrefDatabase(a.name, cur)
		if err != nil {
			return exitWith(ExitFailure, "xrefs: %v", err)
		}
		dbs = append(dbs, db)
	}

	out := newXrefsOutput(c)
	var dangling, unknown int
	err := analysis.CrossRefs(dbs, c.Bool("all-revisions"), func(x *analysis.Xref) error {
		switch x.Status {
		case analysis.XrefDangling:
			if x.Kind == refs.Strong {
				dangling++
			}
		case analysis.XrefUnknownDB:
			unknown++
		}
		return out.row(x)
	})
	if ferr := out.flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return exitWith(ExitFailure, "xrefs: %v", err)
	}
	if unknown > 0 {
		fmt.Fprintf(errw, "xrefs: %d reference(s) into databases not given, not checked\n", unknown)
	}
	if dangling > 0 {
		return exitWith(ExitFailure, "xrefs: %d dangling strong reference(s)", dangling)
	}
	return nil
}

var xrefsHeader = []string{"DB", "OID", "CLASS", "TARGET DB", "TARGET OID", "KIND", "STATUS"}

// xrefsOutput renders rows as JSON Lines, a table or tab-separated text.
type xrefsOutput struct {
	json  *jsonLines
	table *tablewriter.Table
	tsv   *bufio.Writer
	color bool // table on a terminal: dangling rows in red
}

func newXrefsOutput(c *cli.Context) *xrefsOutput {
	w := c.App.Writer
	switch {
	case c.Bool("json"):
		return &xrefsOutput{json: newJSONLines(w)}
	case !c.Bool("tsv") && isTerminal(w):
		t := tablewriter.NewWriter(w)
		t.Header(xrefsHeader)
		return &xrefsOutput{table: t, color: colorsFor(w)}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(strings.Join(xrefsHeader, "\t") + "\n")
	return &xrefsOutput{tsv: bw}
}

func xrefStatusText(s analysis.XrefStatus) string {
	switch s {
	case analysis.XrefDangling:
		return "dangling"
	case analysis.XrefUnknownDB:
		return "unknown-db"
	}
	return "ok"
}

type xrefJSON struct {
	DB          string `json:"db"`
	Oid         string `json:"oid"`
	Class       string `json:"class"`
	TargetDB    string `json:"target_db"`
	TargetOid   string `json:"target_oid"`
	Kind        string `json:"kind"`
	Dangling    *bool  `json:"dangling"`
	TargetClass string `json:"target_class,omitempty"`
	Tid         string `json:"tid"`
	Pos         int64  `json:"pos"`
}

func (o *xrefsOutput) row(x *analysis.Xref) error {
	switch {
	case o.json != nil:
		j := xrefJSON{DB: x.DB, Oid: jsonOid(x.Oid), Class: x.Class, TargetDB: x.TargetDB, TargetOid: jsonOid(x.TargetOid),
			Kind: x.Kind.String(), TargetClass: x.TargetClass, Tid: jsonTid(x.Tid), Pos: x.Pos}
		if x.Status != analysis.XrefUnknownDB {
			d := x.Status == analysis.XrefDangling
			j.Dangling = &d
		}
		return o.json.Write(j)
	case o.table != nil:
		status := xrefStatusText(x.Status)
		switch x.Status {
		case analysis.XrefDangling:
			status = paint(o.color, status, color.FgRed, color.Bold)
		case analysis.XrefUnknownDB:
			status = paint(o.color, status, color.FgYellow)
		}
		return o.table.Append([]string{x.DB, x.Oid.Repr(), x.Class, x.TargetDB, x.TargetOid.Repr(), x.Kind.String(), status})
	}
	_, err := fmt.Fprintf(o.tsv, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.DB, x.Oid.Repr(), x.Class, x.TargetDB, x.TargetOid.Repr(), x.Kind, xrefStatusText(x.Status))
	return err
}

func (o *xrefsOutput) flush() error {
	switch {
	case o.table != nil:
		return o.table.Render()
	case o.tsv != nil:
		return o.tsv.Flush()
	}
	return nil
}
