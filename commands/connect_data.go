package commands

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/pickle"
	"github.com/zodbctl/zodbctl/fsformat/pyrepr"
	"github.com/zodbctl/zodbctl/fsformat/refs"
	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/client"
)

// oidArg reads the one OID argument.
func oidArg(c *cli.Context) (zeowire.Oid, error) {
	pos, err := positionals(c)
	if err != nil {
		return 0, err
	}
	if len(pos) != 1 {
		return 0, usageError("connect %s: expected one OID argument", c.Command.Name)
	}
	return parseOidArg(pos[0])
}

// dialAndLoad reads the OID argument and --at (before any I/O, so that a
// bad argument is a usage error even with the server down), connects and
// loads oid as current or as of the tid --at. The caller closes cl.
func dialAndLoad(c *cli.Context) (cl *client.Client, oid zeowire.Oid, rev zeowire.Revision, err error) {
	if oid, err = oidArg(c); err != nil {
		return nil, 0, rev, err
	}
	at := c.String("at")
	before := zeowire.MaxTid
	if at != "" {
		t, err := parseTidArg("--at", at)
		if err != nil {
			return nil, 0, rev, err
		}
		if t < zeowire.MaxTid {
			before = t + 1
		}
	}
	if cl, err = dial(c, true, nil); err != nil {
		return nil, 0, rev, err
	}
	rev, ok, err := cl.LoadBefore(c.Context, oid, before)
	if err == nil && !ok {
		err = fmt.Errorf("%s: loadBefore: oid %s: %w %s", cl.Addr(), oid, errNoRevision, at)
	}
	if err != nil {
		cl.Close()
		return nil, 0, rev, connectErr(err)
	}
	return cl, oid, rev, nil
}

func runConnectLoad(c *cli.Context) error {
	cl, oid, rev, err := dialAndLoad(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	switch {
	case c.Bool("json"):
		j := struct {
			Oid        string `json:"oid"`
			Tid        string `json:"tid"`
			Time       string `json:"time"`
			NextTid    string `json:"next_tid,omitempty"`
			Size       int    `json:"size"`
			Class      string `json:"class"`
			DataBase64 string `json:"data_base64"`
		}{oid.String(), rev.Start.String(), tidTimeJSON(rev.Start), "", len(rev.Data), recordClass(rev.Data),
			base64.StdEncoding.EncodeToString(rev.Data)}
		if rev.End != 0 {
			j.NextTid = rev.End.String()
		}
		return newJSONLines(c.App.Writer).Write(j)
	case c.Bool("decode"):
		var b strings.Builder
		fmt.Fprintf(&b, "oid %s tid %s (%s) size %d\n", oid, rev.Start, tidTimeText(rev.Start), len(rev.Data))
		d := pickle.NewDecoder(rev.Data)
		d.FindGlobal = pickle.AnyGlobal
		for i, label := range []string{"class", "state"} {
			v, err := d.Decode()
			if err != nil {
				return exitWith(ExitFailure, "zodbctl connect: %s: oid %s: %s pickle: %v", cl.Addr(), oid, label, err)
			}
			fmt.Fprintf(&b, "%s: %s\n", label, pyRepr(v))
			if i == 1 && d.Offset() < len(rev.Data) {
				fmt.Fprintf(&b, "trailing bytes: %d\n", len(rev.Data)-d.Offset())
			}
		}
		return writeOut(c.App.Writer, b.String())
	}
	_, err = c.App.Writer.Write(rev.Data)
	return err
}

// recordClass is module.name of a record's class pickle, as fsdump shows it.
func recordClass(data []byte) string {
	m, n := fsformat.ClassName(data)
	return string(m) + "." + string(n)
}

func runConnectHistory(c *cli.Context) error {
	oid, err := oidArg(c)
	if err != nil {
		return err
	}
	n := c.Int("n")
	if n < 1 {
		return usageError("connect history: -n must be at least 1")
	}
	cl, err := dial(c, true, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	h, err := cl.History(c.Context, oid, n)
	if err != nil {
		return connectErr(err)
	}
	if c.Bool("json") {
		jl := newJSONLines(c.App.Writer)
		for _, e := range h {
			j := struct {
				Tid               string `json:"tid"`
				Time              string `json:"time"`
				User              string `json:"user"`
				UserBase64        string `json:"user_base64,omitempty"`
				Description       string `json:"description"`
				DescriptionBase64 string `json:"description_base64,omitempty"`
				Size              int64  `json:"size"`
				Extension         any    `json:"extension,omitempty"`
			}{Tid: e.Tid.String(), Time: tidTimeJSON(e.Tid), Size: e.Size}
			j.User, j.UserBase64 = jsonBytes(e.User)
			j.Description, j.DescriptionBase64 = jsonBytes(e.Description)
			if len(e.Extension) > 0 {
				j.Extension = pickleToJSON(e.Extension)
			}
			if err := jl.Write(j); err != nil {
				return err
			}
		}
		return nil
	}
	out := bufio.NewWriter(c.App.Writer)
	for _, e := range h {
		line := e.Tid.String() + " " + tidTimeText(e.Tid) + " size=" + strconv.FormatInt(e.Size, 10) +
			" user=" + pyrepr.Bytes(e.User) + " description=" + pyrepr.Bytes(e.Description)
		if len(e.Extension) > 0 {
			line += " extension=" + pyRepr(e.Extension)
		}
		out.WriteString(line + "\n")
	}
	return out.Flush()
}

func runConnectCat(c *cli.Context) error {
	cl, oid, rev, err := dialAndLoad(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	d := pickle.NewDecoder(rev.Data)
	d.FindGlobal = pickle.AnyGlobal
	if _, err := d.Decode(); err != nil {
		return exitWith(ExitFailure, "zodbctl connect: %s: oid %s: class pickle: %v", cl.Addr(), oid, err)
	}
	state, err := d.Decode()
	if err != nil {
		return exitWith(ExitFailure, "zodbctl connect: %s: oid %s: state pickle: %v", cl.Addr(), oid, err)
	}
	var sc refs.Scanner
	rs, err := sc.Scan(rev.Data, nil)
	if err != nil {
		return exitWith(ExitFailure, "zodbctl connect: %s: oid %s: references: %v", cl.Addr(), oid, err)
	}
	class := recordClass(rev.Data)
	if c.Bool("json") {
		type refJSON struct {
			Oid      string `json:"oid"`
			Class    string `json:"class,omitempty"`
			Database string `json:"database,omitempty"`
			Weak     bool   `json:"weak,omitempty"`
		}
		j := struct {
			Oid        string    `json:"oid"`
			Tid        string    `json:"tid"`
			Time       string    `json:"time"`
			Size       int       `json:"size"`
			Class      string    `json:"class"`
			State      any       `json:"state"`
			References []refJSON `json:"references"`
		}{oid.String(), rev.Start.String(), tidTimeJSON(rev.Start), len(rev.Data), class, stateJSON(state, 0), []refJSON{}}
		for _, r := range rs {
			rj := refJSON{Oid: fmt.Sprintf("%016x", r.Oid), Database: string(r.DB), Weak: r.Kind == refs.Weak}
			if r.Module != nil || r.Name != nil {
				rj.Class = string(r.Module) + "." + string(r.Name)
			}
			j.References = append(j.References, rj)
		}
		return newJSONLines(c.App.Writer).Write(j)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "oid: %s\ntid: %s %s\nclass: %s\nsize: %d\n", oid, rev.Start, tidTimeText(rev.Start), class, len(rev.Data))
	if dict, ok := state.(pickle.Dict); ok && allStrKeys(dict) {
		b.WriteString("attributes:\n")
		for _, kv := range dict {
			fmt.Fprintf(&b, "  %s: %s\n", kv.Key.(string), pyRepr(kv.Value))
		}
	} else {
		fmt.Fprintf(&b, "state: %s\n", pyRepr(state))
	}
	b.WriteString("references:")
	if len(rs) == 0 {
		b.WriteString(" none")
	}
	b.WriteString("\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "  %016x", r.Oid)
		if r.DB != nil {
			fmt.Fprintf(&b, " database=%s", r.DB)
		}
		if r.Module != nil || r.Name != nil {
			fmt.Fprintf(&b, " %s.%s", r.Module, r.Name)
		}
		if r.Kind == refs.Weak {
			b.WriteString(" (weak)")
		}
		b.WriteString("\n")
	}
	return writeOut(c.App.Writer, b.String())
}

func allStrKeys(d pickle.Dict) bool {
	for _, kv := range d {
		if _, ok := kv.Key.(string); !ok {
			return false
		}
	}
	return true
}

// pyRepr renders a decoded pickle value roughly as Python's repr, with
// persistent references shown as <ref OID CLASS>.
func pyRepr(v any) string {
	var b strings.Builder
	writeRepr(&b, v, 0)
	return b.String()
}

const maxReprDepth = 64

func writeRepr(b *strings.Builder, v any, depth int) {
	if depth > maxReprDepth {
		b.WriteString("...")
		return
	}
	seq := func(open, close string, items []any, single bool) {
		b.WriteString(open)
		for i, it := range items {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, it, depth+1)
		}
		if single && len(items) == 1 {
			b.WriteString(",")
		}
		b.WriteString(close)
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if x {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case *big.Int:
		b.WriteString(x.String())
	case float64:
		b.WriteString(pyrepr.Float(x))
	case string:
		b.WriteString(pyrepr.UnicodeStr(x))
	case []byte:
		b.WriteString(pyrepr.Bytes(x))
	case pickle.ByteArray:
		b.WriteString("bytearray(" + pyrepr.Bytes([]byte(x)) + ")")
	case pickle.Tuple:
		seq("(", ")", x, true)
	case pickle.List:
		seq("[", "]", x, false)
	case pickle.Dict:
		b.WriteString("{")
		for i, kv := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, kv.Key, depth+1)
			b.WriteString(": ")
			writeRepr(b, kv.Value, depth+1)
		}
		b.WriteString("}")
	case pickle.Set:
		if x.Frozen {
			seq("frozenset({", "})", x.Items, false)
		} else if len(x.Items) == 0 {
			b.WriteString("set()")
		} else {
			seq("{", "}", x.Items, false)
		}
	case *pickle.Set:
		writeRepr(b, *x, depth)
	case pickle.Global:
		b.WriteString(x.String())
	case pickle.PersistentRef:
		b.WriteString(refText(x.ID))
	case *pickle.Object:
		writeRepr(b, x.Callable, depth+1)
		seq("(", ")", x.Args, false)
		if x.State != nil {
			b.WriteString(" state=")
			writeRepr(b, x.State, depth+1)
		}
		if len(x.ListItems) > 0 {
			b.WriteString(" items=")
			seq("[", "]", x.ListItems, false)
		}
		if len(x.DictItems) > 0 {
			b.WriteString(" dict=")
			writeRepr(b, x.DictItems, depth+1)
		}
	case pickle.Object:
		writeRepr(b, &x, depth)
	default:
		fmt.Fprintf(b, "%v", x)
	}
}

// refText renders a ZODB persistent reference (references.md): (oid,
// class), a bare oid, or the list forms ['w', (oid,)], ['m', (db, oid,
// class)], ['n', (db, oid)], ['W', (oid, db)].
func refText(id any) string {
	oidText := func(v any) string {
		if b, ok := v.([]byte); ok && len(b) == 8 {
			return fmt.Sprintf("%016x", uint64(fsformat.OidFromBytes(b)))
		}
		return pyRepr(v)
	}
	switch x := id.(type) {
	case []byte:
		return "<ref " + oidText(x) + ">"
	case pickle.Tuple:
		if len(x) == 2 {
			cls := ""
			switch k := x[1].(type) {
			case pickle.Global:
				cls = " " + k.String()
			case pickle.Tuple:
				if len(k) == 2 {
					cls = fmt.Sprintf(" %v.%v", k[0], k[1])
				}
			}
			return "<ref " + oidText(x[0]) + cls + ">"
		}
	case pickle.List:
		if len(x) == 2 {
			kind, _ := x[0].(string)
			args, _ := x[1].(pickle.Tuple)
			switch {
			case kind == "w" && len(args) >= 1:
				return "<weakref " + oidText(args[0]) + ">"
			case kind == "W" && len(args) == 2:
				return fmt.Sprintf("<weakref %v:%s>", args[1], oidText(args[0]))
			case kind == "m" && len(args) == 3:
				return fmt.Sprintf("<ref %v:%s %s>", args[0], oidText(args[1]), pyRepr(args[2]))
			case kind == "n" && len(args) == 2:
				return fmt.Sprintf("<ref %v:%s>", args[0], oidText(args[1]))
			}
		}
	}
	return "<persistent ref " + pyRepr(id) + ">"
}

// stateJSON maps a decoded state to JSON values: references become
// {"ref": text}, globals "module.name", objects {"class","args","state"}.
func stateJSON(v any, depth int) any {
	if depth > maxReprDepth {
		return "..."
	}
	list := func(items []any) []any {
		out := make([]any, len(items))
		for i, it := range items {
			out[i] = stateJSON(it, depth+1)
		}
		return out
	}
	switch x := v.(type) {
	case pickle.Tuple:
		return list(x)
	case pickle.List:
		return list(x)
	case pickle.Dict:
		m := make(map[string]any, len(x))
		for _, kv := range x {
			k, ok := kv.Key.(string)
			if !ok {
				k = pyRepr(kv.Key)
			}
			m[k] = stateJSON(kv.Value, depth+1)
		}
		return m
	case pickle.Set:
		return list(x.Items)
	case *pickle.Set:
		return list(x.Items)
	case pickle.Global:
		return x.String()
	case pickle.PersistentRef:
		return map[string]any{"ref": refText(x.ID)}
	case *pickle.Object:
		o := map[string]any{"class": pyRepr(x.Callable), "args": list(x.Args)}
		if x.State != nil {
			o["state"] = stateJSON(x.State, depth+1)
		}
		return o
	}
	return pickleToJSON(v)
}

// connectTxnJSON is fsdump --json's transaction object less the fields a
// ZEO iterator does not carry (pos, size, data_pos).
type connectTxnJSON struct {
	Tid               string              `json:"tid"`
	Time              string              `json:"time"`
	Status            string              `json:"status"`
	User              string              `json:"user"`
	UserBase64        string              `json:"user_base64,omitempty"`
	Description       string              `json:"description"`
	DescriptionBase64 string              `json:"description_base64,omitempty"`
	Extension         any                 `json:"extension,omitempty"`
	Records           []connectRecordJSON `json:"records"`
}

// connectRecordJSON is fsdump --json's record less pos, prev and
// back_pointer.
type connectRecordJSON struct {
	Oid     string `json:"oid"`
	Class   string `json:"class,omitempty"`
	Size    int64  `json:"size"`
	Serial  string `json:"serial"`
	BackTid string `json:"back_tid,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
}

func runConnectTransactions(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	var since, until zeowire.Tid
	var err error
	if s := c.String("since"); s != "" {
		if since, err = parseTidArg("--since", s); err != nil {
			return err
		}
	}
	if s := c.String("until"); s != "" {
		if until, err = parseTidArg("--until", s); err != nil {
			return err
		}
		if until == 0 {
			return usageError("connect transactions: --until must be above 0000000000000000")
		}
	}
	cl, err := dial(c, true, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	out := bufio.NewWriterSize(c.App.Writer, 256<<10)
	defer out.Flush()
	var jl *jsonLines
	if c.Bool("json") {
		jl = newJSONLines(c.App.Writer)
	}
	var line []byte
	var recs []connectRecordJSON
	i := 0
	for txn, err := range cl.Transactions(c.Context, since, until) {
		if err != nil {
			out.Flush()
			return connectErr(err)
		}
		if jl != nil {
			j := connectTxnJSON{Tid: txn.Tid.String(), Time: tidTimeJSON(txn.Tid), Status: txn.Status}
			j.User, j.UserBase64 = jsonBytes(txn.User)
			j.Description, j.DescriptionBase64 = jsonBytes(txn.Description)
			if len(txn.Extension) > 0 {
				j.Extension = pickleToJSON(txn.Extension)
			}
			recs = recs[:0]
			for _, r := range txn.Records {
				rj := connectRecordJSON{Oid: r.Oid.String(), Serial: r.Tid.String()}
				if r.Data != nil {
					rj.Size = int64(len(r.Data))
					rj.Class = recordClass(r.Data)
				} else {
					rj.Deleted = true
				}
				if r.DataTxn != 0 {
					rj.BackTid = r.DataTxn.String()
				}
				recs = append(recs, rj)
			}
			j.Records = recs
			if j.Records == nil {
				j.Records = []connectRecordJSON{}
			}
			if err := jl.Write(j); err != nil {
				return exitWith(ExitFailure, "zodbctl connect: %v", err)
			}
			i++
			continue
		}
		line = append(line[:0], "Trans #"...)
		line = appendZeroPad(line, i, 5)
		line = append(line, " tid="...)
		line = fsformat.AppendHex16(line, uint64(txn.Tid))
		line = append(line, " time="...)
		line = fsformat.Tid(txn.Tid).Time().Append(line)
		line = append(line, "\n    status="...)
		line = pyrepr.AppendStr(line, []byte(txn.Status))
		line = append(line, " user="...)
		line = pyrepr.AppendBytes(line, txn.User)
		line = append(line, " description="...)
		line = pyrepr.AppendBytes(line, txn.Description)
		if len(txn.Extension) > 0 {
			line = append(line, " extension="...)
			line = append(line, pyRepr(txn.Extension)...)
		}
		line = append(line, '\n')
		for j, r := range txn.Records {
			line = append(line, "  data #"...)
			line = appendZeroPad(line, j, 5)
			line = append(line, " oid="...)
			line = fsformat.AppendHex16(line, uint64(r.Oid))
			if r.Data == nil {
				line = append(line, " class=undo or abort of object creation"...)
			} else {
				line = append(line, " size="...)
				line = strconv.AppendInt(line, int64(len(r.Data)), 10)
				line = append(line, " class="...)
				line = fsformat.AppendClassName(line, r.Data)
			}
			if r.DataTxn != 0 {
				line = append(line, " bp="...)
				line = fsformat.AppendHex16(line, uint64(r.DataTxn))
			}
			line = append(line, '\n')
		}
		if _, err := out.Write(line); err != nil {
			return exitWith(ExitFailure, "zodbctl connect: %v", err)
		}
		i++
	}
	if err := out.Flush(); err != nil {
		return exitWith(ExitFailure, "zodbctl connect: %v", err)
	}
	return nil
}
