package zeowire

import (
	"errors"
	"fmt"
	"sync"

	"github.com/zodbctl/zodbctl/fsformat/pickle"
)

// PickleCodec is the "Z" encoding: pickle protocol 3 as the Python peers
// write it (fast mode: no memo), decoded with a safe-globals policy: globals
// are admitted only from the modules the reference server admits, and even
// those are never constructed (they decode to descriptions that no method
// accepts, so they end in a TypeError reply).
type PickleCodec struct{}

// Letter implements Codec.
func (PickleCodec) Letter() byte { return 'Z' }

// safeModules are the modules the reference server's unpickler admits
// (ZEO.asyncio.marshal.server_find_global).
var safeModules = map[string]bool{
	"builtins": true, "copy_reg": true, "__builtin__": true,
	"zodbpickle": true, "ZopeUndo.Prefix": true,
}

func safeGlobal(module, name string) (any, error) {
	if safeModules[module] {
		return pickle.Global{Module: module, Name: name}, nil
	}
	return nil, errors.New("only builtins, copy_reg, zodbpickle and ZopeUndo.Prefix globals are allowed")
}

var pickleDecoders = sync.Pool{New: func() any {
	d := pickle.NewDecoder(nil)
	d.FindGlobal = safeGlobal
	d.MaxProtocol = 3
	return d
}}

// AppendMessage implements Codec.
func (PickleCodec) AppendMessage(dst []byte, m *Message) ([]byte, error) {
	e := pickle.Encoder{Protocol: 3, Fast: true}
	return e.Append(dst, Tuple{m.ID, m.flagsValue(), m.Name, m.Args})
}

// DecodeMessage implements Codec.
func (PickleCodec) DecodeMessage(payload []byte) (Message, error) {
	d := pickleDecoders.Get().(*pickle.Decoder)
	d.Reset(payload)
	v, err := d.Decode()
	off := d.Offset()
	d.Reset(nil)
	pickleDecoders.Put(d)
	if err != nil {
		return Message{}, &DecodeError{Encoding: "pickle", Err: err}
	}
	if off != len(payload) {
		return Message{}, &DecodeError{Encoding: "pickle", Err: fmt.Errorf("%d bytes after the pickle", len(payload)-off)}
	}
	t, ok := v.(Tuple)
	if !ok || len(t) != 4 {
		return Message{}, &DecodeError{Encoding: "pickle", Err: errNotMessage}
	}
	m, err := messageFromValues(t[0], t[1], t[2], t[3])
	if err != nil {
		return Message{}, &DecodeError{Encoding: "pickle", Err: err}
	}
	return m, nil
}

// DecodePickleValue decodes one pickle with the same safe-globals policy
// (e.g. a transaction's extension dict).
func DecodePickleValue(b []byte) (any, error) {
	d := pickleDecoders.Get().(*pickle.Decoder)
	defer pickleDecoders.Put(d)
	d.Reset(b)
	defer d.Reset(nil)
	return d.Decode()
}
