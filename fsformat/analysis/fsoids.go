package analysis

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/pyrepr"
	"github.com/zodbctl/zodbctl/fsformat/refs"
)

// Trace is the result of fsoids.py's Tracer: every appearance of a set of
// interesting oids in a Data.fs — their revisions, undone creations, the
// objects they reference and the objects referring to them.
type Trace struct {
	oids  map[fsformat.Oid]*traced
	order []fsformat.Oid // registration order
	msgs  []TraceMsg
	txns  map[fsformat.Tid]TraceTxn

	classes  []string
	classIDs map[string]int32
	ref2name map[fsformat.Oid]int32 // class names learned along the way
}

type traced struct {
	revisions int
	name      int32 // class of the last revision seen, -1 if none
}

// TraceMsg is one finding about an interesting oid. Tid is 0 with NoTid set
// for the "not defined" message.
type TraceMsg struct {
	Oid   fsformat.Oid
	Tid   fsformat.Tid
	NoTid bool
	Text  string
}

// TraceTxn describes a transaction that produced messages.
type TraceTxn struct {
	Pos         int64
	User        []byte
	Description []byte
}

// NotSeen is fsoids' message for an interesting oid without a data record.
const NotSeen = "this oid was not defined (no data record for it found)"

// ParsePyInt parses an oid as Python's int(text, 0) does (31, 0x1f, 0o37,
// 0b11111, underscores between digits; a decimal with a leading zero is
// invalid) and checks that it fits 8 bytes.
func ParsePyInt(text string) (fsformat.Oid, error) {
	s := strings.TrimSpace(text)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := 10
	if len(s) >= 2 && s[0] == '0' {
		switch s[1] {
		case 'x', 'X':
			base, s = 16, s[2:]
		case 'o', 'O':
			base, s = 8, s[2:]
		case 'b', 'B':
			base, s = 2, s[2:]
		}
		if base != 10 && strings.HasPrefix(s, "_") {
			s = s[1:]
		}
	}
	bad := fmt.Errorf("invalid literal for int() with base 0: %s", pyrepr.UnicodeStr(text))
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return 0, bad
	}
	digits := strings.ReplaceAll(s, "_", "")
	if base == 10 && len(digits) > 1 && digits[0] == '0' && strings.Trim(digits, "0") != "" {
		return 0, bad
	}
	n, ok := new(big.Int).SetString(digits, base)
	if !ok {
		return 0, bad
	}
	if neg && n.Sign() != 0 {
		return 0, fmt.Errorf("oid %s is negative", text)
	}
	if !n.IsUint64() {
		return 0, fmt.Errorf("oid %s does not fit in 8 bytes", text)
	}
	return fsformat.Oid(n.Uint64()), nil
}

// TraceOids runs fsoids' Tracer over f for the given oids (FileIterator
// semantics; warn receives the iterator's warnings).
func TraceOids(f *fsformat.File, oids []fsformat.Oid, warn func(string)) (*Trace, error) {
	t := &Trace{
		oids:     make(map[fsformat.Oid]*traced),
		txns:     make(map[fsformat.Tid]TraceTxn),
		classIDs: make(map[string]int32),
		ref2name: make(map[fsformat.Oid]int32),
	}
	for _, o := range oids {
		if _, dup := t.oids[o]; !dup {
			t.oids[o] = &traced{name: -1}
			t.order = append(t.order, o)
		}
	}
	var sc refs.Scanner
	var refBuf []refs.Ref
	type txnRec struct {
		oid        fsformat.Oid
		pos        int64
		class      int32
		start, end int // range in refList
	}
	type refEntry struct {
		oid    fsformat.Oid
		legacy int32 // class id of a legacy (module, name) tuple, -1 if none
	}
	var recs []txnRec
	var refList []refEntry
	recordsMap := make(map[fsformat.Oid]int32) // oid → class of its record in this txn
	var name []byte

	for txn, err := range f.Transactions(fsformat.IterOptions{Warn: warn}) {
		if err != nil {
			return t, err
		}
		produced := len(t.msgs)
		recs, refList = recs[:0], refList[:0]
		clear(recordsMap)
		// Pass 1 (_save_references): revisions and undone creations.
		for rec, err := range txn.Records() {
			if err != nil {
				return t, err
			}
			data := rec.Data
			if rec.IsBackpointer() {
				data = nil
				if rec.Back != 0 {
					d, _, _, err := f.LoadBack(rec.Oid, rec.Back)
					if err != nil && !errors.Is(err, fsformat.ErrNoData) {
						return t, &fsformat.RecordError{File: f.Name, Pos: rec.Pos, Err: err}
					}
					data = d
				}
			}
			tr := t.oids[rec.Oid]
			if len(data) == 0 {
				if tr != nil {
					t.msg(rec.Oid, txn.Tid, "creation undo at "+strconv.FormatInt(rec.Pos, 10))
				}
				continue
			}
			name = appendClass(name[:0], &sc, data)
			class := t.intern(name)
			if tr != nil {
				t.msg(rec.Oid, txn.Tid, "new revision "+t.classes[class]+" at "+strconv.FormatInt(rec.Pos, 10))
				tr.revisions++
				tr.name = class
				t.ref2name[rec.Oid] = class
			}
			refBuf, err = sc.Scan(data, refBuf[:0])
			if err != nil {
				return t, &fsformat.RecordError{File: f.Name, Pos: rec.Pos, Oid: rec.Oid.Repr(), Err: err}
			}
			start := len(refList)
			for i := range refBuf {
				r := &refBuf[i]
				if !r.CountsForReferencesf() {
					continue
				}
				e := refEntry{oid: fsformat.Oid(r.Oid), legacy: -1}
				if r.LegacyClass {
					name = append(append(append(name[:0], r.Module...), '.'), r.Name...)
					e.legacy = t.intern(name)
				}
				refList = append(refList, e)
			}
			recordsMap[rec.Oid] = class
			recs = append(recs, txnRec{rec.Oid, rec.Pos, class, start, len(refList)})
		}
		// Pass 2 (_check_drec): references from and to interesting oids.
		for _, r := range recs {
			_, ownInteresting := t.oids[r.oid]
			for _, ref := range refList[r.start:r.end] {
				if _, ok := t.oids[ref.oid]; ok {
					oc, ok := t.ref2name[r.oid]
					if !ok {
						oc = r.class
						t.ref2name[r.oid] = oc
					}
					t.msg(ref.oid, txn.Tid, "referenced by "+r.oid.Repr()+" "+t.classes[oc]+" at "+strconv.FormatInt(r.pos, 10))
				}
				if ownInteresting {
					var klass string
					if ref.legacy >= 0 {
						t.ref2name[ref.oid] = ref.legacy
						klass = t.classes[ref.legacy]
					} else if c, ok := t.ref2name[ref.oid]; ok {
						klass = t.classes[c]
					} else if c, ok := recordsMap[ref.oid]; ok {
						t.ref2name[ref.oid] = c
						klass = t.classes[c]
					} else {
						klass = "<unknown>"
					}
					t.msg(r.oid, txn.Tid, "references "+ref.oid.Repr()+" "+klass+" at "+strconv.FormatInt(r.pos, 10))
				}
			}
		}
		if len(t.msgs) > produced {
			t.txns[txn.Tid] = TraceTxn{Pos: txn.Pos, User: clone(txn.User), Description: clone(txn.Description)}
		}
	}
	return t, nil
}

func clone(b []byte) []byte { return append([]byte{}, b...) }

// appendClass appends get_pickle_metadata's "module.class".
func appendClass(dst []byte, sc *refs.Scanner, data []byte) []byte {
	m, n := sc.Class(data)
	dst = append(dst, m...)
	dst = append(dst, '.')
	return append(dst, n...)
}

func (t *Trace) intern(name []byte) int32 {
	if id, ok := t.classIDs[string(name)]; ok {
		return id
	}
	id := int32(len(t.classes))
	t.classes = append(t.classes, string(name))
	t.classIDs[string(name)] = id
	return id
}

func (t *Trace) msg(oid fsformat.Oid, tid fsformat.Tid, text string) {
	t.msgs = append(t.msgs, TraceMsg{Oid: oid, Tid: tid, Text: text})
}

// Messages returns the findings sorted as fsoids sorts them: by oid, then
// tid (the tid-less "not defined" message first — Python 3 crashes
// comparing None with bytes there; Python 2 put None first), then text.
func (t *Trace) Messages() []TraceMsg {
	msgs := append([]TraceMsg(nil), t.msgs...)
	for _, o := range t.order {
		if t.oids[o].name < 0 {
			msgs = append(msgs, TraceMsg{Oid: o, NoTid: true, Text: NotSeen})
		}
	}
	sort.SliceStable(msgs, func(i, j int) bool {
		a, b := &msgs[i], &msgs[j]
		if a.Oid != b.Oid {
			return a.Oid < b.Oid
		}
		if a.NoTid != b.NoTid {
			return a.NoTid
		}
		if a.Tid != b.Tid {
			return a.Tid < b.Tid
		}
		return a.Text < b.Text
	})
	return msgs
}

// Revisions returns the number of revisions seen of an interesting oid and
// the class of the last one ("<unknown>" if none).
func (t *Trace) Revisions(oid fsformat.Oid) (int, string) {
	tr := t.oids[oid]
	if tr == nil || tr.name < 0 {
		if tr == nil {
			return 0, "<unknown>"
		}
		return tr.revisions, "<unknown>"
	}
	return tr.revisions, t.classes[tr.name]
}

// Txn returns the transaction details of a tid that has messages.
func (t *Trace) Txn(tid fsformat.Tid) TraceTxn { return t.txns[tid] }

// shortenBytes is fsoids' shorten(s, 50) on bytes: 22 leading bytes,
// " ... ", 28 trailing bytes.
func shortenBytes(s []byte) []byte {
	const size = 50
	if len(s) <= size {
		return s
	}
	lead := (size - 5) / 2
	out := append(append([]byte{}, s[:lead]...), " ... "...)
	return append(out, s[len(s)-(size-lead):]...)
}

// Report writes fsoids.py's report.
func (t *Trace) Report(w io.Writer) error {
	bw := bufio.NewWriter(w)
	var curOid fsformat.Oid
	var curTid fsformat.Tid
	haveOid, haveTid := false, false
	for _, m := range t.Messages() {
		if !haveOid || m.Oid != curOid {
			n, name := t.Revisions(m.Oid)
			plural := "s"
			if n == 1 {
				plural = ""
			}
			fmt.Fprintf(bw, "oid %s %s %d revision%s\n", m.Oid.Repr(), name, n, plural)
			curOid, haveOid, haveTid = m.Oid, true, false
			if m.NoTid {
				fmt.Fprintf(bw, "    %s\n", m.Text)
				continue
			}
		}
		if !haveTid || m.Tid != curTid {
			curTid, haveTid = m.Tid, true
			info := t.txns[m.Tid]
			fmt.Fprintf(bw, "    tid %s offset=%d %s\n", m.Tid.Repr(), info.Pos, m.Tid.Time())
			fmt.Fprintf(bw, "        tid user=%s\n", pyrepr.Bytes(shortenBytes(info.User)))
			fmt.Fprintf(bw, "        tid description=%s\n", pyrepr.Bytes(shortenBytes(info.Description)))
		}
		fmt.Fprintf(bw, "        %s\n", m.Text)
	}
	return bw.Flush()
}

// WriteJSON writes one JSON object per message, in report order: oid (16
// hex digits), class (of the oid's last revision, or "<unknown>"),
// revisions, tid (16 hex digits, null for "not defined"), txn_offset, user,
// description (text; when not valid UTF-8 also user_base64 /
// description_base64 with the exact bytes) and message.
func (t *Trace) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, m := range t.Messages() {
		n, name := t.Revisions(m.Oid)
		rec := map[string]any{"oid": m.Oid.String(), "class": name, "revisions": n, "message": m.Text,
			"tid": nil, "txn_offset": nil, "user": nil, "description": nil}
		if !m.NoTid {
			info := t.txns[m.Tid]
			rec["tid"], rec["txn_offset"] = m.Tid.String(), info.Pos
			rec["user"], rec["description"] = string(info.User), string(info.Description)
			if !utf8.Valid(info.User) {
				rec["user_base64"] = base64.StdEncoding.EncodeToString(info.User)
			}
			if !utf8.Valid(info.Description) {
				rec["description_base64"] = base64.StdEncoding.EncodeToString(info.Description)
			}
		}
		if err := enc.Encode(rec); err != nil {
			return err
		}
	}
	return bw.Flush()
}
