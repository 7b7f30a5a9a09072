package fsformat

import (
	"bytes"
	"encoding/binary"
)

// ClassName returns the module and class name recorded in the first pickle
// of a data record, like ZODB's get_pickle_metadata (spec references.md
// §3.1): a leading GLOBAL (after PROTO, optionally after MARK) is read
// directly; anything else goes through a minimal pickle evaluator that
// understands the class-description forms ((module, name), args) and
// (klass, args). Unknown shapes give "", "" (printed as ".").
// The returned slices alias data.
func ClassName(data []byte) (module, name []byte) {
	d := data
	if len(d) >= 2 && d[0] == 0x80 {
		d = d[2:]
	}
	if len(d) >= 2 && d[0] == '(' && d[1] == 'c' {
		if m, n, ok := globalLines(d[2:]); ok {
			return m, n
		}
	} else if len(d) >= 1 && d[0] == 'c' {
		if m, n, ok := globalLines(d[1:]); ok {
			return m, n
		}
	}
	return classFromPickle(data)
}

func globalLines(d []byte) (module, name []byte, ok bool) {
	i := bytes.IndexByte(d, '\n')
	if i < 0 {
		return nil, nil, false
	}
	module = d[:i]
	rest := d[i+1:]
	j := bytes.IndexByte(rest, '\n')
	if j < 0 {
		return nil, nil, false
	}
	return module, rest[:j], true
}

// AppendClassName appends "module.name" for fsdump's class= field.
func AppendClassName(dst, data []byte) []byte {
	m, n := ClassName(data)
	dst = append(dst, m...)
	dst = append(dst, '.')
	return append(dst, n...)
}

// pval is a value on the mini pickle machine's stack.
type pval struct {
	kind  byte // 's' string, 'g' global, 't' tuple, 'n' none, 'm' mark, 'o' other
	s     []byte
	s2    []byte // global name
	items []pval
}

// classFromPickle evaluates the first pickle just far enough to find the
// class description. It never panics and is bounded by len(data).
func classFromPickle(data []byte) (module, name []byte) {
	var stack []pval
	memo := map[int]pval{}
	pop := func() (pval, bool) {
		if len(stack) == 0 {
			return pval{}, false
		}
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		return v, true
	}
	popMark := func() ([]pval, bool) {
		for i := len(stack) - 1; i >= 0; i-- {
			if stack[i].kind == 'm' {
				items := append([]pval(nil), stack[i+1:]...)
				stack = stack[:i]
				return items, true
			}
		}
		return nil, false
	}
	d := data
	need := func(n int) bool { return len(d) >= n }
	line := func() ([]byte, bool) {
		i := bytes.IndexByte(d, '\n')
		if i < 0 {
			return nil, false
		}
		l := d[:i]
		d = d[i+1:]
		return l, true
	}
	for steps := 0; len(d) > 0 && steps < 100000; steps++ {
		op := d[0]
		d = d[1:]
		switch op {
		case 0x80: // PROTO
			if !need(1) {
				return nil, nil
			}
			d = d[1:]
		case 0x95: // FRAME
			if !need(8) {
				return nil, nil
			}
			d = d[8:]
		case '(':
			stack = append(stack, pval{kind: 'm'})
		case 'N':
			stack = append(stack, pval{kind: 'n'})
		case 'c': // GLOBAL
			m, ok1 := line()
			n, ok2 := line()
			if !ok1 || !ok2 {
				return nil, nil
			}
			stack = append(stack, pval{kind: 'g', s: m, s2: n})
		case 0x93: // STACK_GLOBAL
			n, ok1 := pop()
			m, ok2 := pop()
			if !ok1 || !ok2 {
				return nil, nil
			}
			stack = append(stack, pval{kind: 'g', s: m.s, s2: n.s})
		case 'X', 'B', 'T': // 4-byte length strings
			if !need(4) {
				return nil, nil
			}
			n := int(binary.LittleEndian.Uint32(d))
			d = d[4:]
			if n < 0 || !need(n) {
				return nil, nil
			}
			stack = append(stack, pval{kind: 's', s: d[:n]})
			d = d[n:]
		case 'U', 'C', 0x8c: // 1-byte length strings
			if !need(1) {
				return nil, nil
			}
			n := int(d[0])
			d = d[1:]
			if !need(n) {
				return nil, nil
			}
			stack = append(stack, pval{kind: 's', s: d[:n]})
			d = d[n:]
		case 0x8d, 0x8e: // 8-byte length strings
			if !need(8) {
				return nil, nil
			}
			n := binary.LittleEndian.Uint64(d)
			d = d[8:]
			if n > uint64(len(d)) {
				return nil, nil
			}
			stack = append(stack, pval{kind: 's', s: d[:n]})
			d = d[n:]
		case 'S', 'V': // text strings (quotes/escapes kept as is)
			l, ok := line()
			if !ok {
				return nil, nil
			}
			if op == 'S' && len(l) >= 2 && (l[0] == '\'' || l[0] == '"') {
				l = l[1 : len(l)-1]
			}
			stack = append(stack, pval{kind: 's', s: l})
		case 'K':
			if !need(1) {
				return nil, nil
			}
			d = d[1:]
			stack = append(stack, pval{kind: 'o'})
		case 'M':
			if !need(2) {
				return nil, nil
			}
			d = d[2:]
			stack = append(stack, pval{kind: 'o'})
		case 'J':
			if !need(4) {
				return nil, nil
			}
			d = d[4:]
			stack = append(stack, pval{kind: 'o'})
		case 0x8a: // LONG1
			if !need(1) || !need(1+int(d[0])) {
				return nil, nil
			}
			d = d[1+int(d[0]):]
			stack = append(stack, pval{kind: 'o'})
		case 'I', 'L', 'F':
			if _, ok := line(); !ok {
				return nil, nil
			}
			stack = append(stack, pval{kind: 'o'})
		case 'G':
			if !need(8) {
				return nil, nil
			}
			d = d[8:]
			stack = append(stack, pval{kind: 'o'})
		case 0x88, 0x89, ']', '}':
			stack = append(stack, pval{kind: 'o'})
		case ')':
			stack = append(stack, pval{kind: 't'})
		case 0x85, 0x86, 0x87: // TUPLE1..3
			n := int(op-0x85) + 1
			if len(stack) < n {
				return nil, nil
			}
			items := append([]pval(nil), stack[len(stack)-n:]...)
			stack = append(stack[:len(stack)-n], pval{kind: 't', items: items})
		case 't':
			items, ok := popMark()
			if !ok {
				return nil, nil
			}
			stack = append(stack, pval{kind: 't', items: items})
		case 'l', 'd':
			if _, ok := popMark(); !ok {
				return nil, nil
			}
			stack = append(stack, pval{kind: 'o'})
		case 'a', 's', 'u', 'e', 0x90:
			// container mutations: the container stays an opaque value
			switch op {
			case 'a':
				pop()
			case 's':
				pop()
				pop()
			default:
				if _, ok := popMark(); !ok {
					return nil, nil
				}
			}
		case 'q': // BINPUT
			if !need(1) || len(stack) == 0 {
				return nil, nil
			}
			memo[int(d[0])] = stack[len(stack)-1]
			d = d[1:]
		case 'r': // LONG_BINPUT
			if !need(4) || len(stack) == 0 {
				return nil, nil
			}
			memo[int(binary.LittleEndian.Uint32(d))] = stack[len(stack)-1]
			d = d[4:]
		case 0x94: // MEMOIZE
			if len(stack) == 0 {
				return nil, nil
			}
			memo[len(memo)] = stack[len(stack)-1]
		case 'p', 'g':
			l, ok := line()
			if !ok {
				return nil, nil
			}
			k := 0
			for _, c := range l {
				if c < '0' || c > '9' {
					return nil, nil
				}
				k = k*10 + int(c-'0')
				if k > 1<<30 {
					return nil, nil
				}
			}
			if op == 'p' {
				if len(stack) == 0 {
					return nil, nil
				}
				memo[k] = stack[len(stack)-1]
			} else {
				v, ok := memo[k]
				if !ok {
					return nil, nil
				}
				stack = append(stack, v)
			}
		case 'h', 'j':
			var k int
			if op == 'h' {
				if !need(1) {
					return nil, nil
				}
				k = int(d[0])
				d = d[1:]
			} else {
				if !need(4) {
					return nil, nil
				}
				k = int(binary.LittleEndian.Uint32(d))
				d = d[4:]
			}
			v, ok := memo[k]
			if !ok {
				return nil, nil
			}
			stack = append(stack, v)
		case 'Q': // BINPERSID
			if _, ok := pop(); !ok {
				return nil, nil
			}
			stack = append(stack, pval{kind: 'o'})
		case '.': // STOP
			v, ok := pop()
			if !ok {
				return nil, nil
			}
			return describe(v)
		default:
			return nil, nil
		}
	}
	return nil, nil
}

func describe(v pval) (module, name []byte) {
	switch v.kind {
	case 'g':
		return v.s, v.s2
	case 't':
		if len(v.items) == 0 {
			return nil, nil
		}
		first := v.items[0]
		if first.kind == 't' && len(first.items) == 2 && first.items[0].kind == 's' && first.items[1].kind == 's' {
			return first.items[0].s, first.items[1].s
		}
		if first.kind == 'g' {
			return first.s, first.s2
		}
		if first.kind == 's' && len(v.items) == 2 && v.items[1].kind == 's' {
			return first.s, v.items[1].s
		}
	}
	return nil, nil
}
