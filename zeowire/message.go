package zeowire

import (
	"errors"
	"fmt"
)

// Kind says what a message is; it determines the flags on the wire.
type Kind uint8

const (
	// KindCall is a synchronous call (flags False).
	KindCall Kind = iota
	// KindAsync is a one-way call (message id 0, flags True).
	KindAsync
	// KindReply is a normal reply (name ".reply", flags int 0). The client
	// heartbeat (-1, 0, ".reply", None) is a KindReply with ID -1.
	KindReply
	// KindError is an exception reply (name ".reply", flags int 2) whose
	// Args is (class_name, exc_args).
	KindError
)

// ReplyName is the method name of replies.
const ReplyName = ".reply"

// Message is one decoded frame after the handshake: (msgid, flags, name, args).
type Message struct {
	ID   any // int64 for ordinary calls, Tuple for loadBefore; echoed unchanged
	Kind Kind
	Name string
	Args any // Tuple for calls; the return value for replies
}

// IsHeartbeat reports whether m is the client heartbeat (message id -1),
// which receivers ignore.
func (m *Message) IsHeartbeat() bool {
	id, ok := m.ID.(int64)
	return ok && id == -1
}

// flagsValue is what goes on the wire for the message's flags, matching what
// the Python peers send: bools for calls, ints 0/2 for replies.
func (m *Message) flagsValue() any {
	switch m.Kind {
	case KindCall:
		return false
	case KindAsync:
		return true
	case KindError:
		return int64(2)
	}
	return int64(0)
}

// messageFromValues builds a Message from the decoded 4 fields.
func messageFromValues(id, flags, name, args any) (Message, error) {
	s, ok := name.(string)
	if !ok {
		return Message{}, fmt.Errorf("message name is %s, not str", describe(name))
	}
	m := Message{ID: id, Name: s, Args: args}
	async := Truthy(flags)
	switch {
	case s == ReplyName && async:
		m.Kind = KindError
	case s == ReplyName:
		m.Kind = KindReply
	case async:
		m.Kind = KindAsync
	default:
		m.Kind = KindCall
	}
	return m, nil
}

// Codec encodes and decodes messages in one of the two encodings.
type Codec interface {
	// Letter is the handshake letter: 'Z' (pickle) or 'M' (msgpack).
	Letter() byte
	// AppendMessage appends the encoded message to dst.
	AppendMessage(dst []byte, m *Message) ([]byte, error)
	// DecodeMessage decodes one frame payload. The result does not alias
	// payload.
	DecodeMessage(payload []byte) (Message, error)
}

// DecodeError reports a frame that is not a valid message.
type DecodeError struct {
	Encoding string
	Err      error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("undecodable %s message: %v", e.Encoding, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

var errNotMessage = errors.New("not a 4-element sequence")

// CodecFor returns the codec of a handshake letter, or nil.
func CodecFor(letter byte) Codec {
	switch letter {
	case 'Z':
		return PickleCodec{}
	case 'M':
		return MsgpackCodec{}
	}
	return nil
}
