package zeowire

import "errors"

// PickleCodec is the "Z" encoding: pickle protocol 3, as the Python peers
// write it (fast mode, no memo), decoded with a safe-globals policy: no
// class is ever constructed from the wire.
type PickleCodec struct{}

// Letter implements Codec.
func (PickleCodec) Letter() byte { return 'Z' }

var errNoPickle = errors.New("pickle codec not available yet (waiting for fsformat/pickle)")

// AppendMessage implements Codec.
func (PickleCodec) AppendMessage(dst []byte, m *Message) ([]byte, error) {
	return dst, errNoPickle
}

// DecodeMessage implements Codec.
func (PickleCodec) DecodeMessage(payload []byte) (Message, error) {
	return Message{}, &DecodeError{Encoding: "pickle", Err: errNoPickle}
}
