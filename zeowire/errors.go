package zeowire

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
)

// Exception class names the Python client rebuilds (spec section 2.4).
const (
	ClassPOSKeyError             = "ZODB.POSException.POSKeyError"
	ClassReadOnlyError           = "ZODB.POSException.ReadOnlyError"
	ClassStorageTransactionError = "ZODB.POSException.StorageTransactionError"
	ClassConflictError           = "ZODB.POSException.ConflictError"
	ClassReadConflictError       = "ZODB.POSException.ReadConflictError"
	ClassValueError              = "builtins.ValueError"
	ClassKeyError                = "builtins.KeyError"
	ClassTypeError               = "builtins.TypeError"
	ClassAttributeError          = "builtins.AttributeError"
	ClassAssertionError          = "builtins.AssertionError"
	ClassException               = "builtins.Exception"
	ClassOSError                 = "builtins.OSError"
)

// ConflictError is a write conflict (or, with Read set, a read conflict from
// checkCurrentSerialInTransaction). Committed is the tid currently stored,
// Serial the one the client based its change on.
type ConflictError struct {
	Oid       Oid
	Committed Tid
	Serial    Tid
	ClassName string // "" is sent as None
	Read      bool
	// Data is the client's record that conflicted (used by the
	// client-conflict-resolution vote reply); nil for deletes and reads.
	Data []byte
}

func (e *ConflictError) Error() string {
	kind := "database conflict error"
	if e.Read {
		kind = "database read conflict error"
	}
	return fmt.Sprintf("%s (oid %s, serial this txn started with %s, serial currently committed %s)",
		kind, e.Oid, e.Serial, e.Committed)
}

// POSKeyError reports a missing object (or revision).
type POSKeyError struct {
	Oid Oid
	// Args, when set, replaces the default exception arguments (oid,).
	Args Tuple
}

func (e *POSKeyError) Error() string { return "no such object: oid " + e.Oid.String() }

// ErrReadOnly is the ReadOnlyError of ZODB.
var ErrReadOnly = errors.New("read-only storage or connection")

// StorageTransactionError reports a two-phase-commit call that does not
// fit the connection's transaction state.
type StorageTransactionError struct {
	Args Tuple
}

func (e *StorageTransactionError) Error() string {
	return "storage transaction error: " + Repr(e.Args)
}

// RemoteError is an exception reply: the class name and its arguments as
// the peer sent them. A server returns it to send an arbitrary exception; a
// client gets it for exceptions it has no specific type for.
type RemoteError struct {
	Class string
	Args  any
}

func (e *RemoteError) Error() string { return e.Class + Repr(e.Args) }

// ExceptionReply returns the (class_name, exc_args) pair sent for err.
func ExceptionReply(err error) (string, any) {
	var ce *ConflictError
	var pk *POSKeyError
	var ste *StorageTransactionError
	var re *RemoteError
	var ae *ArgError
	var errno syscall.Errno
	switch {
	case errors.As(err, &ce):
		class := ClassConflictError
		msg := "database conflict error"
		if ce.Read {
			class = ClassReadConflictError
			msg = "database read conflict error"
		}
		var cn any
		if ce.ClassName != "" {
			cn = ce.ClassName
		}
		return class, Dict{
			{Key: "message", Value: msg},
			{Key: "oid", Value: ce.Oid.Bytes()},
			{Key: "class_name", Value: cn},
			{Key: "serials", Value: Tuple{ce.Committed.Bytes(), ce.Serial.Bytes()}},
		}
	case errors.As(err, &pk):
		if pk.Args != nil {
			return ClassPOSKeyError, pk.Args
		}
		return ClassPOSKeyError, Tuple{pk.Oid.Bytes()}
	case errors.Is(err, ErrReadOnly):
		return ClassReadOnlyError, Tuple{}
	case errors.As(err, &ste):
		return ClassStorageTransactionError, ste.Args
	case errors.As(err, &re):
		return re.Class, re.Args
	case errors.As(err, &ae):
		return ClassTypeError, Tuple{ae.Error()}
	case errors.As(err, &errno):
		// What FileStorage raises for a full disk or an I/O error:
		// OSError(errno, strerror[, filename]), "[Errno 28] No space left
		// on device: '…/Data.fs'" on the client.
		msg := errno.Error()
		if msg != "" {
			msg = strings.ToUpper(msg[:1]) + msg[1:]
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return ClassOSError, Tuple{int64(errno), msg, pe.Path}
		}
		return ClassOSError, Tuple{int64(errno), msg}
	}
	return ClassException, Tuple{err.Error()}
}

// ErrorFromReply rebuilds a typed error from an exception reply's args
// (class_name, exc_args), as the Python client does.
func ErrorFromReply(args any) error {
	t, ok := args.(Tuple)
	if !ok || len(t) != 2 {
		return &RemoteError{Class: "?", Args: args}
	}
	class, _ := t[0].(string)
	switch class {
	case ClassConflictError, ClassReadConflictError:
		if d, ok := t[1].(Dict); ok {
			ce := &ConflictError{Read: class == ClassReadConflictError}
			if v, ok := d.Get("oid"); ok {
				ce.Oid, _ = AsOid(v)
			}
			if v, ok := d.Get("serials"); ok {
				if s, ok := v.(Tuple); ok && len(s) == 2 {
					ce.Committed, _ = AsTid(s[0])
					ce.Serial, _ = AsTid(s[1])
				}
			}
			if v, ok := d.Get("class_name"); ok {
				ce.ClassName, _ = v.(string)
			}
			return ce
		}
	case ClassPOSKeyError:
		if a, ok := t[1].(Tuple); ok && len(a) >= 1 {
			if oid, err := AsOid(a[0]); err == nil {
				if len(a) == 1 {
					return &POSKeyError{Oid: oid}
				}
				return &POSKeyError{Oid: oid, Args: a}
			}
			// A missing blob: (message, oid, serial).
			if len(a) == 3 {
				if oid, err := AsOid(a[1]); err == nil {
					return &POSKeyError{Oid: oid, Args: a}
				}
			}
		}
	case ClassReadOnlyError:
		return ErrReadOnly
	case ClassStorageTransactionError:
		if a, ok := t[1].(Tuple); ok {
			return &StorageTransactionError{Args: a}
		}
	}
	return &RemoteError{Class: class, Args: t[1]}
}
