package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/pyrepr"
	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/client"
)

func tidTimeText(t zeowire.Tid) string { return fsformat.Tid(t).Time().String() }
func tidTimeJSON(t zeowire.Tid) string { return jsonTime(fsformat.Tid(t)) }

func runConnectInfo(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cl, err := dial(c, false, func(o *client.Options) { o.ReadOnlyFallback = true })
	if err != nil {
		return err
	}
	defer cl.Close()
	info, err := cl.Info(c.Context)
	if err != nil {
		return connectErr(err)
	}
	ro := cl.ReadOnly()
	proto := string(cl.Encoding()) + zeowire.ProtocolVersion
	var ifaces []string
	for _, p := range info.Interfaces {
		ifaces = append(ifaces, p[0]+"."+p[1])
	}
	if c.Bool("json") {
		return newJSONLines(c.App.Writer).Write(struct {
			Address                string   `json:"address"`
			Storage                string   `json:"storage"`
			Name                   string   `json:"name"`
			Size                   int64    `json:"size"`
			Length                 int64    `json:"length"`
			LastTid                string   `json:"last_tid"`
			LastTime               string   `json:"last_time"`
			ReadOnly               bool     `json:"read_only"`
			SupportsUndo           bool     `json:"supports_undo"`
			SupportsRecordIternext bool     `json:"supports_record_iternext"`
			Interfaces             []string `json:"interfaces"`
			Protocol               string   `json:"protocol"`
		}{cl.Addr(), c.String("storage"), info.Name, info.Size, info.Length, info.LastTid.String(), tidTimeJSON(info.LastTid),
			ro, info.SupportsUndo, info.SupportsRecordIternext, nonNil(ifaces), proto})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "address: %s\nstorage: %s\nname: %s\nsize: %d\nlength: %d\n", cl.Addr(), storageName(c), info.Name, info.Size, info.Length)
	fmt.Fprintf(&b, "last-transaction: %s %s\n", info.LastTid, tidTimeText(info.LastTid))
	fmt.Fprintf(&b, "read-only: %t\nsupports-undo: %t\nsupports-record-iternext: %t\n", ro, info.SupportsUndo, info.SupportsRecordIternext)
	fmt.Fprintf(&b, "interfaces: %s\nprotocol: %s\n", strings.Join(ifaces, " "), proto)
	return writeOut(c.App.Writer, b.String())
}

func storageName(c *cli.Context) string { return c.String("storage") }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func runConnectStatus(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if c.Bool("ruok") {
		opts, err := connectOptions(c)
		if err != nil {
			return err
		}
		text, addr, err := client.Ruok(c.Context, opts)
		if err != nil {
			return connectErr(err)
		}
		if c.Bool("json") {
			return writeOut(c.App.Writer, strings.TrimSpace(string(text))+"\n")
		}
		return renderRuok(c, addr, text)
	}
	cl, err := dial(c, true, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	st, err := cl.ServerStatus(c.Context)
	if err != nil {
		return connectErr(err)
	}
	if c.Bool("json") {
		var b []byte
		b = append(b, `{"address":`...)
		b = appendJSON(b, cl.Addr())
		b = append(b, `,"storage":`...)
		b = appendJSON(b, c.String("storage"))
		b = append(b, `,"status":`...)
		b = appendOrderedJSON(b, st)
		b = append(b, "}\n"...)
		_, err := c.App.Writer.Write(b)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "address: %s\nstorage: %s\n", cl.Addr(), c.String("storage"))
	for _, kv := range st {
		fmt.Fprintf(&b, "%s: %s\n", plainText(kv.Key), plainText(kv.Value))
	}
	return writeOut(c.App.Writer, b.String())
}

// renderRuok prints the ruok JSON ({storage: status}) as text, keeping the
// server's key order.
func renderRuok(c *cli.Context, addr string, text []byte) error {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var b strings.Builder
	fmt.Fprintf(&b, "address: %s\n", addr)
	bad := func(err error) error {
		return exitWith(ExitFailure, "zodbctl connect: %s: ruok: malformed reply: %v", addr, err)
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return bad(fmt.Errorf("not a JSON object: %.60q", text))
	}
	for dec.More() {
		name, err := dec.Token()
		if err != nil {
			return bad(err)
		}
		fmt.Fprintf(&b, "storage %v:\n", name)
		if t, err := dec.Token(); err != nil || t != json.Delim('{') {
			return bad(fmt.Errorf("storage %v: not an object", name))
		}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return bad(err)
			}
			var v any
			if err := dec.Decode(&v); err != nil {
				return bad(err)
			}
			switch x := v.(type) {
			case nil:
				v = "None"
			case bool:
				v = map[bool]string{true: "True", false: "False"}[x]
			}
			fmt.Fprintf(&b, "  %v: %v\n", k, v)
		}
		if _, err := dec.Token(); err != nil {
			return bad(err)
		}
	}
	return writeOut(c.App.Writer, b.String())
}

// plainText renders a status value: str as is, other values as Python
// prints them.
func plainText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case float64:
		return pyrepr.Float(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case []byte:
		return pyrepr.Bytes(x)
	}
	return zeowire.Repr(v)
}

func appendJSON(b []byte, v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return append(b, "null"...)
	}
	return append(b, bytes.TrimRight(buf.Bytes(), "\n")...)
}

// appendOrderedJSON renders a wire value as JSON keeping dict order.
func appendOrderedJSON(b []byte, v any) []byte {
	switch x := v.(type) {
	case zeowire.Dict:
		b = append(b, '{')
		for i, kv := range x {
			if i > 0 {
				b = append(b, ',')
			}
			k, ok := kv.Key.(string)
			if !ok {
				k = plainText(kv.Key)
			}
			b = appendJSON(b, k)
			b = append(b, ':')
			b = appendOrderedJSON(b, kv.Value)
		}
		return append(b, '}')
	case zeowire.Tuple:
		return appendJSONList(b, x)
	case zeowire.List:
		return appendJSONList(b, x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return appendJSON(b, pyrepr.Float(x))
		}
	}
	return appendJSON(b, pickleToJSON(v))
}

func appendJSONList(b []byte, l []any) []byte {
	b = append(b, '[')
	for i, e := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendOrderedJSON(b, e)
	}
	return append(b, ']')
}

func runConnectLastTid(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cl, err := dial(c, true, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	tid, err := cl.LastTransaction(c.Context)
	if err != nil {
		return connectErr(err)
	}
	if c.Bool("json") {
		return newJSONLines(c.App.Writer).Write(map[string]string{"tid": tid.String(), "time": tidTimeJSON(tid)})
	}
	return writeOut(c.App.Writer, tid.String()+"\n")
}

// The root object ZODB creates in an empty database: an empty
// persistent.mapping.PersistentMapping (class pickle, then state
// {'data': {}}), protocol 3 as ZODB 5 writes it.
var emptyRootRecord = []byte("\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03s.")

func runConnectCheck(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	nowrite := c.Bool("nowrite")
	start := time.Now()
	type result struct {
		Status  string  `json:"status"` // healthy, unhealthy, unreachable
		Address string  `json:"address,omitempty"`
		Storage string  `json:"storage"`
		Wrote   bool    `json:"wrote"`
		Mode    string  `json:"mode,omitempty"` // zeoup, or rewrite-root (see zeoupCommit)
		Tid     string  `json:"tid,omitempty"`
		Elapsed float64 `json:"elapsed"`
		Error   string  `json:"error,omitempty"`
	}
	res := result{Storage: c.String("storage")}
	finish := func(code int, errText string) error {
		res.Elapsed = math.Round(time.Since(start).Seconds()*1000) / 1000
		res.Error = errText
		if c.Bool("json") {
			if err := newJSONLines(c.App.Writer).Write(res); err != nil {
				return err
			}
		} else if code == ExitOK {
			fmt.Fprintf(c.App.Writer, "Elapsed time: %.2f\n", time.Since(start).Seconds())
		} else {
			fmt.Fprintln(c.App.Writer, errText)
		}
		if code == ExitOK {
			return nil
		}
		return exitWith(code, "")
	}
	opts, err := connectOptions(c)
	if err != nil {
		return err
	}
	opts.ReadOnly = nowrite
	cl, err := client.Connect(c.Context, opts)
	if err != nil {
		var ue *client.UnreachableError
		if errors.As(err, &ue) {
			res.Status = "unreachable"
			return finish(2, "ClientDisconnected: "+oneLine(err.Error()))
		}
		res.Status = "unhealthy"
		return finish(1, checkErrText(err))
	}
	defer cl.Close()
	res.Address = cl.Addr()
	_, ok, err := cl.LoadBefore(c.Context, 0, zeowire.MaxTid)
	var pk *zeowire.POSKeyError
	missing := errors.As(err, &pk) || (err == nil && !ok)
	if err != nil && !missing || (missing && nowrite) {
		res.Status = "unhealthy"
		if err == nil {
			err = fmt.Errorf("%s: loadBefore: root object: %w", cl.Addr(), errNoRevision)
		}
		return finish(1, checkErrText(err))
	}
	if !nowrite {
		tid, mode, err := zeoupCommit(c.Context, cl)
		var ce *zeowire.ConflictError
		switch {
		case err == nil:
			res.Wrote, res.Tid, res.Mode = true, tid.String(), mode
		case errors.As(err, &ce):
			// The server took part in a commit: healthy, as for zeoup.
		default:
			res.Status = "unhealthy"
			return finish(1, checkErrText(err))
		}
	}
	res.Status = "healthy"
	return finish(ExitOK, "")
}

// checkErrText is zeoup's "ClassName: message" line.
func checkErrText(err error) string {
	class := "Exception"
	var re *zeowire.RemoteError
	var pk *zeowire.POSKeyError
	var ce *zeowire.ConflictError
	var rg *client.RegisterError
	var le *client.ConnectionLostError
	switch {
	case errors.Is(err, zeowire.ErrReadOnly):
		class = "ReadOnlyError"
	case errors.As(err, &pk):
		class = "POSKeyError"
	case errors.As(err, &ce):
		class = "ConflictError"
	case errors.As(err, &re):
		class = re.Class[strings.LastIndexByte(re.Class, '.')+1:]
	case errors.As(err, &rg):
		class = "RegisterError"
	case errors.As(err, &le):
		class = "ClientDisconnected"
	}
	return class + ": " + oneLine(err.Error())
}
