package refs

import (
	"bytes"
	"errors"

	"github.com/zodbctl/zodbctl/fsformat/pickle/opcode"
)

// Class returns the module and class name of a data record the way ZODB's
// get_pickle_metadata does (references.md §3.1), which is what fsdump,
// fsrefs, fsoids and netspace print as "module.class": the GLOBAL line(s) at
// the start of the class pickle when it starts with one (optionally after
// PROTO and MARK), else the names found by running the class pickle —
// a ((module, name), args) tuple, or a GLOBAL value. Anything else, and any
// error, gives two empty names (printed "."). The slices point into data or
// into the Scanner.
func (s *Scanner) Class(data []byte) (module, name []byte) {
	d := data
	if len(d) > 0 && d[0] == opcode.Proto {
		if len(d) < 2 {
			return nil, nil
		}
		d = d[2:]
	}
	prefix := 0
	if bytes.HasPrefix(d, []byte("(c")) {
		prefix = 2
	} else if len(d) > 0 && d[0] == 'c' {
		prefix = 1
	}
	if prefix > 0 {
		i := bytes.IndexByte(d, '\n')
		if i < 0 {
			return nil, nil
		}
		j := bytes.IndexByte(d[i+1:], '\n')
		if j < 0 {
			// Python's split would fail here and the tool would crash;
			// report no class.
			return nil, nil
		}
		return d[prefix:i], d[i+1 : i+1+j]
	}
	if !s.runClassPickle(data) {
		return nil, nil
	}
	v := s.result
	if v.kind == vTuple {
		t := &s.tuples[v.idx]
		if t.n == 0 {
			return nil, nil
		}
		v = t.items[0]
		if v.kind == vTuple {
			if t := &s.tuples[v.idx]; t.n == 2 && t.items[0].kind == vString && t.items[1].kind == vString {
				return s.bytesOf(t.items[0]), s.bytesOf(t.items[1])
			}
			return nil, nil
		}
	}
	if v.kind == vGlobal {
		return s.bytesOf(v), s.nameOf(v)
	}
	return nil, nil
}

// runClassPickle runs only the class pickle of data; false if it is
// malformed or contains a persistent reference (which ZODB's plain
// Unpickler cannot load).
func (s *Scanner) runClassPickle(data []byte) bool {
	s.reset(data)
	_, _, err := s.run(0, nil, false)
	return err == nil && !s.persidInCls
}

// ErrPersistentClass is Python's UnpicklingError when a class pickle holds a
// persistent reference (a persistent class) and is read without a
// persistent_load function, as analyze.py does; its text is what analyze.py
// prints.
var ErrPersistentClass = errors.New("A load persistent id instruction was encountered, but no persistent_load function was specified.")

// AnalyzeType appends to buf the type analyze.py reports for a record
// (tools-output.md §9): "module.name" of the first GLOBAL met in the class
// pickle; without one, element 0 of the class pickle's value, "module.name"
// for a (module, name) tuple. The error's text is what analyze.py prints
// when computing the type fails.
func (s *Scanner) AnalyzeType(data []byte, buf []byte) ([]byte, error) {
	s.reset(data)
	_, _, err := s.run(0, nil, false)
	if s.persidFirst {
		return buf, ErrPersistentClass
	}
	if g := s.firstGlobal; g.kind == vGlobal {
		// The first find_class call aborts analyze's unpickling, so
		// whatever follows it does not matter.
		buf = append(buf, s.bytesOf(g)...)
		buf = append(buf, '.')
		return append(buf, s.nameOf(g)...), nil
	}
	if err != nil {
		return buf, err
	}
	v := s.result
	if v.kind == vTuple && s.tuples[v.idx].n > 0 {
		e := s.tuples[v.idx].items[0]
		if e.kind == vTuple {
			t := &s.tuples[e.idx]
			if t.n == 2 && t.items[0].kind == vString && t.items[1].kind == vString {
				buf = append(buf, s.bytesOf(t.items[0])...)
				buf = append(buf, '.')
				return append(buf, s.bytesOf(t.items[1])...), nil
			}
		}
		if e.kind == vString {
			return append(buf, s.bytesOf(e)...), nil
		}
	}
	return append(buf, "None"...), nil
}
