package zeowire

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"sync"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// MsgpackCodec is the "M" encoding: msgpack with the bin/str distinction, as
// Python's msgpack writes with use_bin_type=True. Tuples and lists are both
// arrays; arrays decode as Tuple (Python decodes with use_list=False).
type MsgpackCodec struct{}

// maxNesting bounds recursion on hostile input.
const maxNesting = 200

// Letter implements Codec.
func (MsgpackCodec) Letter() byte { return 'M' }

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *appendWriter) WriteByte(c byte) error      { w.b = append(w.b, c); return nil }

type msgpackEncoder struct {
	w   appendWriter
	enc *msgpack.Encoder
}

var msgpackEncoders = sync.Pool{New: func() any {
	e := &msgpackEncoder{}
	e.enc = msgpack.NewEncoder(&e.w)
	return e
}}

// AppendMessage implements Codec.
func (MsgpackCodec) AppendMessage(dst []byte, m *Message) ([]byte, error) {
	e := msgpackEncoders.Get().(*msgpackEncoder)
	e.w.b = dst
	err := e.enc.EncodeArrayLen(4)
	if err == nil {
		err = encodeMsgpack(e.enc, m.ID, 0)
	}
	if err == nil {
		err = encodeMsgpack(e.enc, m.flagsValue(), 0)
	}
	if err == nil {
		err = e.enc.EncodeString(m.Name)
	}
	if err == nil {
		err = encodeMsgpack(e.enc, m.Args, 0)
	}
	out := e.w.b
	e.w.b = nil
	msgpackEncoders.Put(e)
	return out, err
}

// AppendMsgpackValue appends the msgpack encoding of one wire value.
func AppendMsgpackValue(dst []byte, v any) ([]byte, error) {
	e := msgpackEncoders.Get().(*msgpackEncoder)
	e.w.b = dst
	err := encodeMsgpack(e.enc, v, 0)
	out := e.w.b
	e.w.b = nil
	msgpackEncoders.Put(e)
	return out, err
}

func encodeMsgpack(enc *msgpack.Encoder, v any, depth int) error {
	if depth > maxNesting {
		return errors.New("value nested too deeply")
	}
	switch x := v.(type) {
	case nil:
		return enc.EncodeNil()
	case bool:
		return enc.EncodeBool(x)
	case int64:
		return enc.EncodeInt(x)
	case int:
		return enc.EncodeInt(int64(x))
	case uint64:
		return enc.EncodeUint(x)
	case *big.Int:
		if x.IsInt64() {
			return enc.EncodeInt(x.Int64())
		}
		if x.IsUint64() {
			return enc.EncodeUint(x.Uint64())
		}
		return fmt.Errorf("integer %s does not fit msgpack", x)
	case float64:
		return enc.EncodeFloat64(x)
	case string:
		return enc.EncodeString(x)
	case []byte:
		return enc.EncodeBytes(x)
	case Oid:
		return enc.EncodeBytes(x.Bytes())
	case Tid:
		return enc.EncodeBytes(x.Bytes())
	case Tuple:
		return encodeMsgpackArray(enc, x, depth)
	case List:
		return encodeMsgpackArray(enc, x, depth)
	case Dict:
		if err := enc.EncodeMapLen(len(x)); err != nil {
			return err
		}
		for _, kv := range x {
			if err := encodeMsgpack(enc, kv.Key, depth+1); err != nil {
				return err
			}
			if err := encodeMsgpack(enc, kv.Value, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("cannot encode %T in msgpack", v)
}

func encodeMsgpackArray(enc *msgpack.Encoder, x []any, depth int) error {
	if err := enc.EncodeArrayLen(len(x)); err != nil {
		return err
	}
	for _, e := range x {
		if err := encodeMsgpack(enc, e, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// DecodeMessage implements Codec.
func (MsgpackCodec) DecodeMessage(payload []byte) (Message, error) {
	v, err := DecodeMsgpackValue(payload)
	if err != nil {
		return Message{}, &DecodeError{Encoding: "msgpack", Err: err}
	}
	t, ok := v.(Tuple)
	if !ok || len(t) != 4 {
		return Message{}, &DecodeError{Encoding: "msgpack", Err: errNotMessage}
	}
	m, err := messageFromValues(t[0], t[1], t[2], t[3])
	if err != nil {
		return Message{}, &DecodeError{Encoding: "msgpack", Err: err}
	}
	return m, nil
}

// DecodeMsgpackValue decodes exactly one msgpack value filling all of b.
func DecodeMsgpackValue(b []byte) (any, error) {
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	v, err := decodeMsgpack(dec, r, 0)
	if err != nil {
		return nil, err
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d trailing bytes after the value", r.Len())
	}
	return v, nil
}

func decodeMsgpack(dec *msgpack.Decoder, r *bytes.Reader, depth int) (any, error) {
	if depth > maxNesting {
		return nil, errors.New("value nested too deeply")
	}
	c, err := dec.PeekCode()
	if err != nil {
		return nil, err
	}
	switch {
	case c == msgpcode.Nil:
		return nil, dec.DecodeNil()
	case c == msgpcode.True || c == msgpcode.False:
		return dec.DecodeBool()
	case c == msgpcode.Uint64:
		u, err := dec.DecodeUint64()
		if err != nil {
			return nil, err
		}
		if u > math.MaxInt64 {
			return new(big.Int).SetUint64(u), nil
		}
		return int64(u), nil
	case msgpcode.IsFixedNum(c), c >= msgpcode.Uint8 && c <= msgpcode.Int64:
		return dec.DecodeInt64()
	case c == msgpcode.Float || c == msgpcode.Double:
		return dec.DecodeFloat64()
	case msgpcode.IsString(c):
		s, err := dec.DecodeString()
		if err != nil {
			return nil, err
		}
		if !utf8.ValidString(s) {
			return nil, errors.New("str is not valid UTF-8")
		}
		return s, nil
	case msgpcode.IsBin(c):
		n, err := dec.DecodeBytesLen()
		if err != nil {
			return nil, err
		}
		if n > r.Len() {
			return nil, fmt.Errorf("bin of %d bytes exceeds the remaining %d", n, r.Len())
		}
		b := make([]byte, n)
		if err := dec.ReadFull(b); err != nil {
			return nil, err
		}
		return b, nil
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		n, err := dec.DecodeArrayLen()
		if err != nil {
			return nil, err
		}
		if n > r.Len() { // every element takes at least one byte
			return nil, fmt.Errorf("array of %d elements exceeds the remaining %d bytes", n, r.Len())
		}
		t := make(Tuple, n)
		for i := range t {
			if t[i], err = decodeMsgpack(dec, r, depth+1); err != nil {
				return nil, err
			}
		}
		return t, nil
	case msgpcode.IsFixedMap(c), c == msgpcode.Map16, c == msgpcode.Map32:
		n, err := dec.DecodeMapLen()
		if err != nil {
			return nil, err
		}
		if 2*n > r.Len() {
			return nil, fmt.Errorf("map of %d entries exceeds the remaining %d bytes", n, r.Len())
		}
		d := make(Dict, n)
		for i := range d {
			k, err := decodeMsgpack(dec, r, depth+1)
			if err != nil {
				return nil, err
			}
			switch k.(type) {
			case string, []byte:
			default:
				return nil, fmt.Errorf("map key of type %s (only str and bytes keys are allowed)", describe(k))
			}
			v, err := decodeMsgpack(dec, r, depth+1)
			if err != nil {
				return nil, err
			}
			d[i] = KV{Key: k, Value: v}
		}
		return d, nil
	}
	return nil, fmt.Errorf("unsupported msgpack type code 0x%02x", c)
}
