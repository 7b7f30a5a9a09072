package analysis

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/oidmap"
	"github.com/zodbctl/zodbctl/fsformat/pyrepr"
)

// Histogram is fsstats.py's Histogram: value → count, remembering the order
// in which values were first added (its mode is the first value, in that
// order, with the largest count).
type Histogram struct {
	index  map[int64]int // value → position in keys/counts
	keys   []int64
	counts []int64

	binSize int64
	bins    []bin // the non-empty bins in ascending order
}

// bin is one non-empty bin: fsstats' bins list is dense ([0] * (1 +
// max // binsize)), which a single huge value (a multi-GB transaction, or
// any number in hand-made fsdump text) would make huge; the empty bins only
// ever print as "   ...", so they are not stored.
type bin struct {
	index int64
	count int64
}

// Add counts one occurrence of v.
func (h *Histogram) Add(v int64) {
	if h.index == nil {
		h.index = make(map[int64]int)
	}
	i, ok := h.index[v]
	if !ok {
		i = len(h.keys)
		h.index[v] = i
		h.keys = append(h.keys, v)
		h.counts = append(h.counts, 0)
	}
	h.counts[i]++
}

// Size is the number of values added.
func (h *Histogram) Size() int64 {
	var n int64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// Mean is Σ value·count / size, a Python float.
func (h *Histogram) Mean() float64 {
	// Python sums exact integers; big.Int is not needed below 2^63.
	var p int64
	for i, k := range h.keys {
		p += k * h.counts[i]
	}
	return pyTrueDiv(p, h.Size())
}

// Median is fsstats' "close enough" median: walking the values in
// ascending order, the first whose count exceeds what is left of size/2.
func (h *Histogram) Median() int64 {
	n := float64(h.Size()) / 2
	keys := append([]int64(nil), h.keys...)
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, k := range keys {
		c := float64(h.counts[h.index[k]])
		if c > n {
			return k
		}
		n -= c
	}
	return 0
}

// Mode is the first value (in insertion order) with the largest count.
func (h *Histogram) Mode() int64 {
	var mode, best int64
	for i, k := range h.keys {
		if h.counts[i] > best {
			best, mode = h.counts[i], k
		}
	}
	return mode
}

// Max is the largest value.
func (h *Histogram) Max() int64 {
	var m int64
	for i, k := range h.keys {
		if i == 0 || k > m {
			m = k
		}
	}
	return m
}

// MakeBins groups the values into bins of binSize.
func (h *Histogram) MakeBins(binSize int64) {
	h.binSize = binSize
	h.bins = h.bins[:0]
	order := make([]int, len(h.keys))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return h.keys[order[a]] < h.keys[order[b]] })
	for _, i := range order {
		idx := h.keys[i] / binSize
		if n := len(h.bins); n > 0 && h.bins[n-1].index == idx {
			h.bins[n-1].count += h.counts[i]
		} else {
			h.bins = append(h.bins, bin{idx, h.counts[i]})
		}
	}
}

// pyTrueDiv is Python's int / int (correctly rounded for the magnitudes
// here, which are far below 2^53).
func pyTrueDiv(a, b int64) float64 { return float64(a) / float64(b) }

// pyFloorDiv is Python's float // float for positive operands: the floor
// of the exact quotient (computed through fmod, as CPython does), not of the
// rounded one.
func pyFloorDiv(v, w float64) float64 {
	mod := math.Mod(v, w)
	div := (v - mod) / w
	if div == 0 {
		return 0
	}
	fl := math.Floor(div)
	if div-fl > 0.5 {
		fl++
	}
	return fl
}

// Stats accumulates what fsstats.py collects from fsdump output.
type Stats struct {
	txnObjects Histogram // objects per transaction
	txnBytes   Histogram // tlen per transaction
	objSize    Histogram // record sizes
	seenTxn    bool
	objects    int64 // records in the current transaction

	oids       oidmap.Map[int32] // oid → index in revisions
	revisions  []int32           // revisions per oid, in first-seen order
	classIndex map[string]int
	classes    []*classStats // in first-seen order
	// oidClasses remembers (class, oid) pairs already listed, for oids
	// seen with more than one class.
	oidClass  []int32 // oid index → first class index
	multiSeen map[[2]int64]bool
}

type classStats struct {
	name string
	size Histogram // record sizes of this class
	oids []int32   // distinct oids (indexes) in first-seen order
}

// NewStats returns empty statistics.
func NewStats() *Stats {
	return &Stats{classIndex: make(map[string]int)}
}

// Txn starts a transaction of tlen bytes (a "Trans" line of fsdump).
func (s *Stats) Txn(tlen int64) {
	if s.seenTxn {
		s.txnObjects.Add(s.objects)
	}
	s.seenTxn = true
	s.objects = 0
	s.txnBytes.Add(tlen)
}

// Record counts a data record with data (a "data" line of fsdump that has
// size=). class is the text fsdump prints, cut at the first blank as
// fsstats' regular expression does.
func (s *Stats) Record(oid uint64, size int64, class []byte) {
	if i := bytes.IndexAny(class, " \t\n\r\f\v"); i >= 0 {
		class = class[:i]
	}
	s.objSize.Add(size)
	oi, ok := s.oids.Get(fsformat.Oid(oid))
	ci, cok := s.classIndex[string(class)]
	if !cok {
		ci = len(s.classes)
		s.classIndex[string(class)] = ci
		s.classes = append(s.classes, &classStats{name: string(class)})
	}
	c := s.classes[ci]
	c.size.Add(size)
	if !ok {
		oi = int32(len(s.revisions))
		s.oids.Set(fsformat.Oid(oid), oi)
		s.revisions = append(s.revisions, 0)
		s.oidClass = append(s.oidClass, int32(ci))
		c.oids = append(c.oids, oi)
	} else if int(s.oidClass[oi]) != ci {
		if s.multiSeen == nil {
			s.multiSeen = make(map[[2]int64]bool)
		}
		key := [2]int64{int64(ci), int64(oi)}
		if !s.multiSeen[key] {
			s.multiSeen[key] = true
			c.oids = append(c.oids, oi)
		}
	}
	s.revisions[oi]++
	s.objects++
}

// finish adds the last transaction's object count, as fsstats does at EOF
// (only when it is not zero).
func (s *Stats) finish() {
	if s.objects != 0 {
		s.txnObjects.Add(s.objects)
		s.objects = 0
	}
}

var (
	transPrefix = []byte("Trans")
	dataPrefix  = []byte("  data")
	oidField    = []byte("oid=")
	sizeField   = []byte(" size=")
	classField  = []byte(" class=")
	tidField    = []byte("tid=")
)

// ParseFsdump feeds fsdump text (the output of fsdump.py or zodbctl fsdump)
// into s, line by line, with fsstats' regular expressions.
func (s *Stats) ParseFsdump(r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	lineNo := 0
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer cannot be a line fsstats
			// counts from fsdump output; skip it whole.
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			line = nil
		}
		if len(line) > 0 {
			lineNo++
			if perr := s.parseLine(bytes.TrimRight(line, "\n")); perr != nil {
				return fmt.Errorf("line %d: %w", lineNo, perr)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	s.finish()
	return nil
}

func (s *Stats) parseLine(line []byte) error {
	switch {
	case bytes.HasPrefix(line, dataPrefix):
		// oid=([0-9a-f]+) size=(\d+) class=(\S+), searched anywhere
		for rest := line; ; {
			i := bytes.Index(rest, oidField)
			if i < 0 {
				return nil
			}
			rest = rest[i+len(oidField):]
			hexLen := 0
			for hexLen < len(rest) && (rest[hexLen] >= '0' && rest[hexLen] <= '9' || rest[hexLen] >= 'a' && rest[hexLen] <= 'f') {
				hexLen++
			}
			if hexLen == 0 || !bytes.HasPrefix(rest[hexLen:], sizeField) {
				continue
			}
			after := rest[hexLen+len(sizeField):]
			digits := 0
			for digits < len(after) && after[digits] >= '0' && after[digits] <= '9' {
				digits++
			}
			if digits == 0 || !bytes.HasPrefix(after[digits:], classField) {
				continue
			}
			class := after[digits+len(classField):]
			if len(class) == 0 || isSpace(class[0]) {
				continue
			}
			oid, err := strconv.ParseUint(string(rest[:hexLen]), 16, 64)
			if err != nil {
				return fmt.Errorf("oid %q out of range", rest[:hexLen])
			}
			size, err := strconv.ParseInt(string(after[:digits]), 10, 64)
			if err != nil {
				return fmt.Errorf("size %q out of range", after[:digits])
			}
			s.Record(oid, size, class)
			return nil
		}
	case bytes.HasPrefix(line, transPrefix):
		// fsstats adds the previous transaction's count at every Trans
		// line, even one its regular expression then rejects.
		if s.seenTxn {
			s.txnObjects.Add(s.objects)
		}
		size, ok, err := transSize(line)
		if err != nil || !ok {
			return err
		}
		s.seenTxn = true
		s.objects = 0
		s.txnBytes.Add(size)
	}
	return nil
}

// transSize applies tid=([0-9a-f]+).*size=(\d+) to a Trans line: the last
// size= with digits after the first tid= followed by a hex digit.
func transSize(line []byte) (int64, bool, error) {
	i := 0
	for {
		j := bytes.Index(line[i:], tidField)
		if j < 0 {
			return 0, false, nil
		}
		i += j + len(tidField)
		if i < len(line) && isHex(line[i]) {
			break
		}
	}
	rest := line[i+1:]
	for {
		j := bytes.LastIndex(rest, []byte("size="))
		if j < 0 {
			return 0, false, nil
		}
		d := rest[j+5:]
		n := 0
		for n < len(d) && d[n] >= '0' && d[n] <= '9' {
			n++
		}
		if n == 0 {
			rest = rest[:j]
			continue
		}
		size, err := strconv.ParseInt(string(d[:n]), 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("size %q out of range", d[:n])
		}
		return size, true, nil
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}
func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

// ErrNoTransactions is returned by Stats.Report after the summary when
// there was no transaction at all (fsstats.py crashes there).
var ErrNoTransactions = errors.New("no transactions")

// Report writes fsstats.py's report (with the py3fix for bins of 40 or
// more entries). With no transactions it writes the summary and returns
// ErrNoTransactions.
func (s *Stats) Report(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "Summary: %d txns, %d objects, %d revisions\n\n", s.txnObjects.Size(), len(s.revisions), s.objSize.Size())
	if len(s.txnBytes.keys) == 0 {
		if err := bw.Flush(); err != nil {
			return err
		}
		return ErrNoTransactions
	}
	s.walk(func(name string, h *Histogram, binSize int64, useBins bool) {
		report(bw, h, name, binSize, useBins)
	}, func(classes []*classStats) {
		const fmtRow = "%5s %6s %6s %6s   %-50.50s\n"
		fmt.Fprintf(bw, fmtRow, "num", "median", "mean", "mode", "class")
		fmt.Fprintf(bw, fmtRow, "---", "------", "----", "----", "-----")
		for _, c := range classes {
			h := &c.size
			fmt.Fprintf(bw, fmtRow, strconv.FormatInt(h.Size(), 10), strconv.FormatInt(h.Median(), 10),
				pyrepr.Float(h.Mean()), strconv.FormatInt(h.Mode(), 10), c.name)
		}
		bw.WriteString("\n")
	})
	return bw.Flush()
}

// walk visits the histogram reports in fsstats' order, calling table for
// the class table (classes in ascending (count, name) order) at its place.
func (s *Stats) walk(hist func(name string, h *Histogram, binSize int64, useBins bool), table func([]*classStats)) {
	hist("Transaction size (bytes)", &s.txnBytes, 1024, false)
	hist("Transaction size (objects)", &s.txnObjects, 10, false)
	hist("Object size", &s.objSize, 128, false)
	hist("Number of revisions", s.revisionHistogram(), 10, false)
	for _, c := range s.classes {
		var h Histogram
		keep := false
		for _, oi := range c.oids {
			n := int64(s.revisions[oi])
			h.Add(n)
			keep = keep || n > 1
		}
		if keep {
			hist("Number of revisions for "+c.name, &h, 10, false)
		}
	}
	byCount := append([]*classStats(nil), s.classes...)
	sort.Slice(byCount, func(i, j int) bool {
		a, b := byCount[i].size.Size(), byCount[j].size.Size()
		if a != b {
			return a < b
		}
		return byCount[i].name < byCount[j].name
	})
	table(byCount)
	for i := len(byCount) - 1; i >= 0; i-- {
		h := &byCount[i].size
		h.MakeBins(50)
		if len(h.bins) != 1 {
			hist("Object size for "+byCount[i].name, h, 50, true)
		}
	}
}

// WriteJSON writes the statistics as JSON Lines: a "summary" object, one
// "histogram" object per report of the text output (name, total, median,
// mean, mode, max, binsize, bins: the non-empty bins as [start, count]
// pairs) and one "class" object per class (class, num, median, mean, mode),
// in the text report's order.
func (s *Stats) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	enc.Encode(map[string]any{"type": "summary", "txns": s.txnObjects.Size(), "objects": len(s.revisions), "revisions": s.objSize.Size()})
	if len(s.txnBytes.keys) > 0 {
		s.walk(func(name string, h *Histogram, binSize int64, useBins bool) {
			if !useBins {
				h.MakeBins(binSize)
			}
			var mean any
			if h.Size() > 0 {
				mean = h.Mean()
			}
			bins := make([][2]int64, len(h.bins))
			for i, b := range h.bins {
				bins[i] = [2]int64{b.index * h.binSize, b.count}
			}
			enc.Encode(struct {
				Type    string     `json:"type"`
				Name    string     `json:"name"`
				Total   int64      `json:"total"`
				Median  int64      `json:"median"`
				Mean    any        `json:"mean"`
				Mode    int64      `json:"mode"`
				Max     int64      `json:"max"`
				BinSize int64      `json:"binsize"`
				Bins    [][2]int64 `json:"bins"`
			}{"histogram", name, h.Size(), h.Median(), mean, h.Mode(), h.Max(), h.binSize, bins})
		}, func(classes []*classStats) {
			for _, c := range classes {
				h := &c.size
				enc.Encode(struct {
					Type   string  `json:"type"`
					Class  string  `json:"class"`
					Num    int64   `json:"num"`
					Median int64   `json:"median"`
					Mean   float64 `json:"mean"`
					Mode   int64   `json:"mode"`
				}{"class", c.name, h.Size(), h.Median(), h.Mean(), h.Mode()})
			}
		})
	}
	return bw.Flush()
}

func (s *Stats) revisionHistogram() *Histogram {
	var h Histogram
	for _, n := range s.revisions {
		h.Add(int64(n))
	}
	return &h
}

// report is Histogram.report of fsstats.py, with int(n // dot) stars.
func report(w *bufio.Writer, h *Histogram, name string, binSize int64, useBins bool) {
	if useBins {
		binSize = h.binSize
	} else {
		h.MakeBins(binSize)
	}
	if h.Size() == 0 {
		// Python dies in median() here; show the empty histogram.
		fmt.Fprintf(w, "%s\nTotal 0\n\n", name)
		return
	}
	var maxBin, tot int64
	for _, b := range h.bins {
		maxBin = max(maxBin, b.count)
		tot += b.count
	}
	// dot = max(maxval / 40, 1): the int 1 unless maxval/40 >= 1, then a
	// float (1.0 for exactly 40).
	dotIsFloat := maxBin >= 40
	dot := 1.0
	if dotIsFloat {
		dot = pyTrueDiv(maxBin, 40)
	}
	w.WriteString(name)
	fmt.Fprintf(w, "\nTotal %d Median %d Mean %s Mode %d Max %d\nOne * represents ", tot, h.Median(), pyrepr.Float(h.Mean()), h.Mode(), h.Max())
	if dotIsFloat {
		w.WriteString(pyrepr.Float(dot))
	} else {
		w.WriteString("1")
	}
	w.WriteString("\n")
	var cum int64
	var line []byte
	next := int64(0) // the bin index after the last one printed
	for _, b := range h.bins {
		if b.index > next {
			w.WriteString("   ...\n") // one line for a run of empty bins
		}
		next = b.index + 1
		n := b.count
		cum += n
		p := int64(pyTrueDiv(100*n, tot))
		pc := int64(pyTrueDiv(100*cum, tot))
		stars := n
		if dotIsFloat {
			stars = int64(pyFloorDiv(float64(n), dot))
		}
		line = fmt.Appendf(line[:0], "%6d %6d %3d%% %3d%% ", b.index*binSize, n, p, pc)
		for range stars {
			line = append(line, '*')
		}
		line = append(line, '\n')
		w.Write(line)
	}
	w.WriteString("\n")
}

// FsstatsFile collects the statistics fsstats.py would compute from the
// fsdump output of f, by iterating f directly: one transaction per fsdump
// "Trans" line (with fsdump's FileIterator semantics; warn receives its
// warnings), one record per data line that has a size (backpointers
// resolved; undone creations are not counted).
func FsstatsFile(f *fsformat.File, warn func(string)) (*Stats, error) {
	s := NewStats()
	var class []byte
	for txn, err := range f.Transactions(fsformat.IterOptions{Warn: warn}) {
		if err != nil {
			s.finish()
			return s, err
		}
		s.Txn(txn.Len)
		for rec, err := range txn.Records() {
			if err != nil {
				s.finish()
				return s, err
			}
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
					s.finish()
					return s, &fsformat.RecordError{File: f.Name, Pos: rec.Pos, Err: err}
				}
				data = d
			}
			class = fsformat.AppendClassName(class[:0], data)
			s.Record(uint64(rec.Oid), int64(len(data)), class)
		}
	}
	s.finish()
	return s, nil
}
