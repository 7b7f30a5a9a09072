package analysis

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/oidmap"
	"github.com/zodbctl/zodbctl/fsformat/refs"
)

// Analysis holds what analyze.py computes: record and byte counts per type,
// current versus old revisions.
type Analysis struct {
	Transactions int64 // TIDS
	Records      int64 // OIDS: every data record, deletions included
	Bytes        int64 // DBYTES: pickle bytes of the records with data
	Current      int64 // COIDS: distinct oids with data
	CurrentBytes int64 // CBYTES
	Old          int64 // FOIDS: revisions replaced by a later one
	OldBytes     int64 // FBYTES

	types    map[string]int32 // type name → index
	typeList []typeStats
	oids     oidmap.Map[oidInfo]
	// Errors are the messages analyze.py prints when the type of a record
	// cannot be computed (in file order, with the record position).
	Errors []RecordError
}

// RecordError is a problem with one record that does not stop the analysis.
type RecordError struct {
	Oid fsformat.Oid
	Pos int64
	Err error
}

type typeStats struct {
	name  string
	count int64
	bytes int64
}

// oidInfo is kept per object: 8 bytes in a dense slice (oidmap.Map).
type oidInfo struct {
	typ  int32 // index in typeList
	size int32 // size of the latest revision (records are < 2 GiB)
}

// TypeStats is one row of analyze's type table.
type TypeStats struct {
	Name  string
	Count int64
	Bytes int64
}

// Types returns the per-type counts sorted by name, as analyze prints them.
func (a *Analysis) Types() []TypeStats {
	out := make([]TypeStats, len(a.typeList))
	for i, t := range a.typeList {
		out[i] = TypeStats{t.name, t.count, t.bytes}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Analyze iterates f like analyze.py (FileIterator semantics, backpointers
// resolved). warn receives the iterator's warnings.
func Analyze(f *fsformat.File, warn func(string)) (*Analysis, error) {
	a := &Analysis{types: make(map[string]int32)}
	var sc refs.Scanner
	var typ []byte
	for txn, err := range f.Transactions(fsformat.IterOptions{Warn: warn}) {
		if err != nil {
			return a, err
		}
		a.Transactions++
		for rec, err := range txn.Records() {
			if err != nil {
				return a, err
			}
			a.Records++
			data := rec.Data
			if rec.IsBackpointer() {
				if rec.Back == 0 {
					continue
				}
				d, _, _, err := f.LoadBack(rec.Oid, rec.Back)
				if errors.Is(err, fsformat.ErrNoData) {
					continue
				}
				if err != nil {
					return a, &fsformat.RecordError{File: f.Name, Pos: rec.Pos, Err: err}
				}
				data = d
			}
			size := int64(len(data))
			a.Bytes += size
			info, seen := a.oids.Get(rec.Oid)
			if !seen {
				typ, err = sc.AnalyzeType(data, typ[:0])
				if err != nil {
					a.Errors = append(a.Errors, RecordError{rec.Oid, rec.Pos, err})
					continue
				}
				ti, ok := a.types[string(typ)]
				if !ok {
					ti = int32(len(a.typeList))
					a.types[string(typ)] = ti
					a.typeList = append(a.typeList, typeStats{name: string(typ)})
				}
				info.typ = ti
				a.Current++
				a.CurrentBytes += size
			} else {
				a.Old++
				a.OldBytes += int64(info.size)
				a.CurrentBytes += size - int64(info.size)
			}
			info.size = int32(size)
			a.oids.Set(rec.Oid, info)
			t := &a.typeList[info.typ]
			t.count++
			t.bytes += size
		}
	}
	return a, nil
}

// shortenType is analyze.py's shorten(s, n): drop leading dotted components
// until "..." + the rest fits n characters.
func shortenType(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	for len([]rune(s))+3 > n {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			r := []rune(s)
			return string(r[len(r)-n:])
		}
		s = s[i+1:]
	}
	return "..." + s
}

// ErrNoRecords is returned by Analysis.Report after the first line when the
// file has no data record (analyze.py divides by zero there).
var ErrNoRecords = errors.New("no data records")

// Report writes analyze.py's report. The messages for records whose type
// could not be computed come first, as analyze.py prints them while
// iterating.
func (a *Analysis) Report(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, e := range a.Errors {
		fmt.Fprintln(bw, e.Err.Error())
	}
	fmt.Fprintf(bw, "Processed %d records in %d transactions\n", a.Records, a.Transactions)
	if a.Records == 0 || a.Transactions == 0 {
		if err := bw.Flush(); err != nil {
			return err
		}
		return ErrNoRecords
	}
	db := float64(a.Bytes)
	fmt.Fprintf(bw, "Average record size is %7.2f bytes\n", db/float64(a.Records))
	fmt.Fprintf(bw, "Average transaction size is %7.2f bytes\n", db/float64(a.Transactions))
	fmt.Fprintf(bw, "Types used:\n")
	const head = "%-46s %7s %9s %6s %7s\n"
	fmt.Fprintf(bw, head, "Class Name", "Count", "TBytes", "Pct", "AvgSize")
	fmt.Fprintf(bw, head, strings.Repeat("-", 46), strings.Repeat("-", 7), strings.Repeat("-", 9), strings.Repeat("-", 5), strings.Repeat("-", 7))
	cum := 0.0
	for _, t := range a.Types() {
		pct := float64(t.Bytes) * 100.0 / db
		cum += pct
		fmt.Fprintf(bw, "%-46s %7d %9d %5.1f%% %7.2f\n", shortenType(t.Name, 46), t.Count, t.Bytes, pct, float64(t.Bytes)/float64(t.Count))
	}
	fmt.Fprintf(bw, head, strings.Repeat("=", 46), strings.Repeat("=", 7), strings.Repeat("=", 9), strings.Repeat("=", 5), strings.Repeat("=", 7))
	fmt.Fprintf(bw, "%46s %7d %9s %6s %6.2fk\n", "Total Transactions", a.Transactions, " ", " ", db/float64(a.Transactions)/1024.0)
	const sum = "%46s %7d %8dk %5.1f%% %7.2f\n"
	fmt.Fprintf(bw, sum, "Total Records", a.Records, int64(db/1024.0), cum, db/float64(a.Records))
	fmt.Fprintf(bw, sum, "Current Objects", a.Current, int64(float64(a.CurrentBytes)/1024.0),
		float64(a.CurrentBytes)*100.0/db, safeDiv(float64(a.CurrentBytes), float64(a.Current)))
	if a.Old != 0 {
		fmt.Fprintf(bw, sum, "Old Objects", a.Old, int64(float64(a.OldBytes)/1024.0),
			float64(a.OldBytes)*100.0/db, float64(a.OldBytes)/float64(a.Old))
	}
	return bw.Flush()
}

// safeDiv avoids the division by zero Python dies of when no record of the
// file has data.
func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// WriteJSON writes the analysis as JSON Lines: one {"type":"class", class,
// count, bytes} per type (sorted by name), then {"type":"summary",
// transactions, records, bytes, current_objects, current_bytes,
// old_objects, old_bytes}; records whose type could not be computed come
// first as {"type":"error", oid, pos, error}.
func (a *Analysis) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, e := range a.Errors {
		enc.Encode(map[string]any{"type": "error", "oid": e.Oid.String(), "pos": e.Pos, "error": e.Err.Error()})
	}
	for _, t := range a.Types() {
		enc.Encode(struct {
			Type  string `json:"type"`
			Class string `json:"class"`
			Count int64  `json:"count"`
			Bytes int64  `json:"bytes"`
		}{"class", t.Name, t.Count, t.Bytes})
	}
	enc.Encode(struct {
		Type         string `json:"type"`
		Transactions int64  `json:"transactions"`
		Records      int64  `json:"records"`
		Bytes        int64  `json:"bytes"`
		Current      int64  `json:"current_objects"`
		CurrentBytes int64  `json:"current_bytes"`
		Old          int64  `json:"old_objects"`
		OldBytes     int64  `json:"old_bytes"`
	}{"summary", a.Transactions, a.Records, a.Bytes, a.Current, a.CurrentBytes, a.Old, a.OldBytes})
	return bw.Flush()
}
