package commands

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"time"
	"unicode/utf8"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/pickle"
	"github.com/zodbctl/zodbctl/fsformat/pyrepr"
)

// JSON Lines output shared by the commands' --json modes: one JSON object
// per line, flushed after each line so that `zodbctl … --json | jq` streams.
//
// Conventions (documented in each command's help):
//   - oids and tids are 16-digit lowercase hex strings ("00000000000000a1");
//   - times are RFC 3339 in UTC, derived from the tid, to the microsecond;
//   - byte strings from the file (user, description) are JSON strings when
//     they are valid UTF-8; otherwise invalid bytes become U+FFFD and the
//     exact bytes are given base64-encoded in a parallel "<field>_base64";
//   - positions and sizes are integers;
//   - the transaction extension (a pickled dict) is decoded into a JSON
//     object: str and UTF-8 bytes become strings, other bytes base64,
//     tuples and lists arrays, anything else (classes, objects) its Go
//     description as a string; a pickle that is not a dict is given raw in
//     "extension_base64" instead.

// jsonLines writes one JSON value per line and flushes each line.
type jsonLines struct {
	bw  *bufio.Writer
	enc *json.Encoder
}

func newJSONLines(w io.Writer) *jsonLines {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &jsonLines{bw: bw, enc: enc}
}

// Write encodes v on one line and flushes.
func (j *jsonLines) Write(v any) error {
	if err := j.enc.Encode(v); err != nil {
		return err
	}
	return j.bw.Flush()
}

// jsonTid renders a tid for JSON (16 hex digits).
func jsonTid(t fsformat.Tid) string { return t.String() }

// jsonOid renders an oid for JSON (16 hex digits).
func jsonOid(o fsformat.Oid) string { return o.String() }

// jsonTime renders the time encoded in a tid as RFC 3339 in UTC, rounded to
// the microsecond like the text tools' %09.6f seconds (the tid's 60/2^32 s
// unit would otherwise show as …30.124999992 for 30.125).
func jsonTime(t fsformat.Tid) string {
	return t.Time().GoTime().Round(time.Microsecond).Format(time.RFC3339Nano)
}

// jsonBytes returns the text form of raw bytes and, when they are not
// valid UTF-8, their base64 encoding (else "").
func jsonBytes(b []byte) (text, b64 string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return string(b), base64.StdEncoding.EncodeToString(b)
}

// txnJSON is the object each of fsdump, fstail and verify writes per
// transaction with --json.
type txnJSON struct {
	Tid               string       `json:"tid"`
	Time              string       `json:"time"`
	Pos               int64        `json:"pos"`
	Size              int64        `json:"size"`
	Status            string       `json:"status"`
	User              string       `json:"user"`
	UserBase64        string       `json:"user_base64,omitempty"`
	Description       string       `json:"description"`
	DescriptionBase64 string       `json:"description_base64,omitempty"`
	Extension         any          `json:"extension,omitempty"`        // the extension dict, decoded
	ExtensionBase64   string       `json:"extension_base64,omitempty"` // raw pickle, when it does not decode to a dict
	DataPos           int64        `json:"data_pos"`
	Hash              string       `json:"hash,omitempty"`
	Records           []recordJSON `json:"records"`
}

// recordJSON is one data record inside txnJSON.records.
type recordJSON struct {
	Oid         string `json:"oid"`
	Pos         int64  `json:"pos"`
	Class       string `json:"class,omitempty"`
	Size        int64  `json:"size"`
	Serial      string `json:"serial"`
	Prev        int64  `json:"prev"`
	BackPointer *int64 `json:"back_pointer,omitempty"`
	BackTid     string `json:"back_tid,omitempty"`
	Deleted     bool   `json:"deleted,omitempty"`
}

// newTxnJSON fills the transaction fields (records left empty).
func newTxnJSON(t *fsformat.TxnHeader, pos int64, user, desc, ext []byte, recs []recordJSON) txnJSON {
	j := txnJSON{
		Tid:     jsonTid(t.Tid),
		Time:    jsonTime(t.Tid),
		Pos:     pos,
		Size:    t.Len,
		Status:  string(rune(t.Status)),
		DataPos: pos + t.HeaderLen(),
		Records: recs[:0],
	}
	j.User, j.UserBase64 = jsonBytes(user)
	j.Description, j.DescriptionBase64 = jsonBytes(desc)
	if len(ext) > 0 {
		j.Extension, j.ExtensionBase64 = extensionJSON(ext)
	}
	return j
}

// extensionJSON decodes a transaction extension pickle for JSON output.
func extensionJSON(ext []byte) (obj any, raw string) {
	var d pickle.Decoder
	d.FindGlobal = pickle.AnyGlobal
	d.Reset(ext)
	v, err := d.Decode()
	if dict, ok := v.(pickle.Dict); err == nil && ok {
		return pickleToJSON(dict), ""
	}
	return nil, base64.StdEncoding.EncodeToString(ext)
}

// pickleToJSON maps decoded pickle values to values encoding/json renders.
func pickleToJSON(v any) any {
	switch x := v.(type) {
	case nil, bool, int64, string:
		return x
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return pyrepr.Float(x)
		}
		return x
	case *big.Int:
		return json.Number(x.String())
	case []byte:
		if utf8.Valid(x) {
			return string(x)
		}
		return base64.StdEncoding.EncodeToString(x)
	case pickle.Tuple:
		return pickleListJSON(x)
	case pickle.List:
		return pickleListJSON(x)
	case pickle.Dict:
		m := make(map[string]any, len(x))
		for _, kv := range x {
			k, ok := pickleToJSON(kv.Key).(string)
			if !ok {
				k = fmt.Sprint(pickleToJSON(kv.Key))
			}
			m[k] = pickleToJSON(kv.Value)
		}
		return m
	default:
		return fmt.Sprint(x)
	}
}

func pickleListJSON(items []any) []any {
	out := make([]any, len(items))
	for i, it := range items {
		out[i] = pickleToJSON(it)
	}
	return out
}
