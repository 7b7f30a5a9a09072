package mkinstance

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// ConfigError is an error in a configuration file. Msg is the text ZConfig
// uses for the same fault (so messages can be compared with the reference
// tools); File, Line and Key say where it is. Line is 0 when the fault is not
// tied to a line (a missing section, for example).
type ConfigError struct {
	File string // path of the file (as opened), "" if unknown
	Line int    // 1-based line number, 0 if not tied to a line
	Key  string // the key whose value is wrong, "" if none
	Msg  string // ZConfig's message
	Hint string // zodbctl's advice, after the location; may be ""
	Err  error  // underlying error (file system), may be nil
}

func (e *ConfigError) Error() string {
	var where []string
	if e.Key != "" {
		where = append(where, fmt.Sprintf("key %s", pyRepr(e.Key)))
	}
	if e.Line > 0 {
		where = append(where, fmt.Sprintf("line %d", e.Line))
	}
	switch {
	case e.File == overrideFile:
		where = append(where, "in "+overrideFile)
	case e.File != "":
		where = append(where, "in "+fileURL(e.File))
	}
	msg := e.Msg
	if len(where) > 0 {
		msg += " (" + strings.Join(where, ", ") + ")"
	}
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

func (e *ConfigError) Unwrap() error { return e.Err }

// fileURL renders a path the way ZConfig names resources: file:///abs/path.
func fileURL(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return (&url.URL{Scheme: "file", Path: path}).String()
}

// pyRepr quotes s the way Python's repr does for simple strings, so messages
// read like ZConfig's ('address', not "address").
func pyRepr(s string) string {
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\'':
			b.WriteString(`\'`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// Section is one parsed section of a configuration: its type and name
// (both lower-cased, as ZConfig does), its key lines in file order and its
// subsections. The top level of a file is a Section with an empty Type.
type Section struct {
	Type     string
	Name     string // "" when unnamed
	File     string // file holding the section header
	Line     int    // line of the header (0 for the top level)
	EndLine  int    // line of the end tag (or of the header for <x/>)
	Keys     []KeyValue
	Children []*Section
}

// KeyValue is one key line: the key as written (not lower-cased; the schema
// decides) and its value after substitution.
type KeyValue struct {
	Key   string
	Value string
	File  string
	Line  int
}

// Limits that keep a hostile or broken file from using unbounded memory.
const (
	maxLineLength   = 1 << 20
	maxIncludeDepth = 32
)

var (
	// keyValueRE is ZConfig's key line: a name without white space or
	// parentheses, then optional white space and the value.
	keyValueRE     = regexp.MustCompile(`^([^` + pySpace + `()]+)[` + pySpace + `]*([^` + pySpace + `].*)?$`)
	sectionStartRE = regexp.MustCompile(`^([^` + pySpace + `()]+)(?:[` + pySpace + `]+([^` + pySpace + `()]+))?$`)
	substNameRE    = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*`)
)

// pySpace is the character class of Python's \s and str.isspace (ZConfig
// strips lines and splits keys with them): ASCII white space including
// \v, the separators \x1c-\x1f, NEL and the Unicode Z categories.
const pySpace = `\t\n\v\f\r\x1c-\x1f\x{85}\p{Z}`

func pyIsSpace(r rune) bool {
	switch {
	case r == ' ', r >= '\t' && r <= '\r', r >= 0x1c && r <= 0x1f, r == 0x85:
		return true
	}
	return r > 0x7f && unicode.In(r, unicode.Z)
}

func pyStrip(s string) string   { return strings.TrimFunc(s, pyIsSpace) }
func pyRstrip(s string) string  { return strings.TrimRightFunc(s, pyIsSpace) }
func pySplit(s string) []string { return strings.FieldsFunc(s, pyIsSpace) }

// parser reads ZConfig text into Sections. Defines are shared by a file and
// everything it includes.
type parser struct {
	defines map[string]string
	fixed   map[string]bool // defined by the caller: the file's %define is ignored
	soft    map[string]bool // default supplied by zodbctl: the file's %define replaces it
	imports []string
	lenient bool // client mode: accept unknown %import packages
	open    []string
}

// parseFile parses path into a top-level Section.
func (p *parser) parseFile(path string) (*Section, error) {
	top := &Section{File: path}
	if err := p.include(top, path, nil); err != nil {
		return nil, err
	}
	return top, nil
}

func (p *parser) include(sec *Section, path string, from *ConfigError) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	for _, o := range p.open {
		if o == abs {
			e := *from
			e.Msg = "circular %include of " + fileURL(abs)
			return &e
		}
	}
	if len(p.open) >= maxIncludeDepth {
		e := *from
		e.Msg = fmt.Sprintf("%%include nested more than %d deep", maxIncludeDepth)
		return &e
	}
	f, err := os.Open(path)
	if err != nil {
		msg := fmt.Sprintf("error opening file %s: %s", absOr(path), pyOSError(err, absOr(path)))
		if from == nil {
			return &ConfigError{Msg: msg, Err: err} // the message names the file
		}
		e := *from
		e.Msg, e.Err = msg, err
		return &e
	}
	defer f.Close()
	p.open = append(p.open, abs)
	defer func() { p.open = p.open[:len(p.open)-1] }()
	return p.parse(sec, path, bufio.NewReaderSize(f, 64<<10))
}

func absOr(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// pyOSError renders a file error as Python's str(OSError) does:
// [Errno 2] No such file or directory: '/x/inc.conf'.
func pyOSError(err error, path string) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err.Error()
	}
	text := errno.Error()
	if text != "" {
		text = strings.ToUpper(text[:1]) + text[1:]
	}
	return fmt.Sprintf("[Errno %d] %s: %s", int(errno), text, pyRepr(path))
}

type openSection struct {
	sec    *Section
	parent *Section
}

func (p *parser) parse(top *Section, file string, r *bufio.Reader) error {
	section := top
	var stack []openSection
	lineno := 0
	fail := func(msg string) error { return &ConfigError{File: file, Line: lineno, Msg: msg} }
	for {
		raw, err := readLine(r)
		if err == io.EOF {
			break
		}
		lineno++
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				return fail(fmt.Sprintf("line longer than %d bytes", maxLineLength))
			}
			return &ConfigError{File: file, Line: lineno, Msg: fmt.Sprintf("error reading file %s: %s", absOr(file), pyOSError(err, absOr(file))), Err: err}
		}
		if !utf8.ValidString(raw) {
			return fail("not valid UTF-8 text")
		}
		line := pyStrip(raw)
		switch {
		case line == "" || line[0] == '#':
		case strings.HasPrefix(line, "</"):
			if line[len(line)-1] != '>' {
				return fail("malformed section end")
			}
			if len(stack) == 0 {
				return fail("unexpected section end")
			}
			typ := strings.ToLower(pyRstrip(line[2 : len(line)-1]))
			open := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if typ != open.sec.Type {
				return fail("unbalanced section end")
			}
			open.sec.EndLine = lineno
			section = open.parent
		case line[0] == '<':
			if line[len(line)-1] != '>' {
				return fail("malformed section start")
			}
			rest := line[1 : len(line)-1]
			empty := strings.HasSuffix(rest, "/")
			if empty {
				rest = rest[:len(rest)-1]
			}
			m := sectionStartRE.FindStringSubmatch(pyRstrip(rest))
			if m == nil {
				return fail("malformed section header")
			}
			child := &Section{
				Type: strings.ToLower(m[1]),
				Name: strings.ToLower(m[2]),
				File: file,
				Line: lineno,
			}
			section.Children = append(section.Children, child)
			if empty {
				child.EndLine = lineno
			} else {
				stack = append(stack, openSection{sec: child, parent: section})
				section = child
			}
		case line[0] == '%':
			m := keyValueRE.FindStringSubmatch(line[1:])
			if m == nil {
				return fail("missing or unrecognized directive")
			}
			name, arg := m[1], m[2]
			if name != "define" && name != "import" && name != "include" {
				return fail("unknown directive: " + pyRepr(name))
			}
			if arg == "" {
				return fail("missing argument to %" + name + " directive")
			}
			if err := p.directive(section, file, lineno, name, arg); err != nil {
				return err
			}
		default:
			m := keyValueRE.FindStringSubmatch(line)
			if m == nil {
				return fail("malformed configuration data")
			}
			value, err := p.substitute(m[2])
			if err != nil {
				return &ConfigError{File: file, Line: lineno, Msg: err.Error()}
			}
			section.Keys = append(section.Keys, KeyValue{Key: m[1], Value: value, File: file, Line: lineno})
		}
	}
	if len(stack) > 0 {
		return fail("unclosed sections not allowed")
	}
	return nil
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its "\n", io.EOF at the end. A
// line longer than maxLineLength is an error rather than a huge allocation.
func readLine(r *bufio.Reader) (string, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(buf)+len(chunk) > maxLineLength {
			return "", errLineTooLong
		}
		buf = append(buf, chunk...)
		switch err {
		case nil:
			return string(buf[:len(buf)-1]), nil
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			if len(buf) == 0 {
				return "", io.EOF
			}
			return string(buf), nil
		default:
			return "", err
		}
	}
}

func (p *parser) directive(section *Section, file string, lineno int, name, arg string) error {
	fail := func(msg string) error { return &ConfigError{File: file, Line: lineno, Msg: msg} }
	switch name {
	case "define":
		parts := pySplit(arg)
		defname := strings.ToLower(parts[0])
		defvalue := ""
		if len(parts) > 1 {
			defvalue = strings.TrimLeftFunc(arg[len(parts[0]):], pyIsSpace)
		}
		if p.fixed[defname] {
			return nil // the caller's definition wins (documented extension)
		}
		if old, ok := p.defines[defname]; ok && !p.soft[defname] && old != defvalue {
			// ZConfig compares the stored (substituted) value with the new
			// raw text; so does this.
			return fail("cannot redefine " + pyRepr(defname))
		}
		if m := substNameRE.FindString(defname); m != defname {
			return fail("not a substitution legal name: " + pyRepr(defname))
		}
		v, err := p.substitute(defvalue)
		if err != nil {
			return fail(err.Error())
		}
		delete(p.soft, defname)
		p.defines[defname] = v
	case "import":
		pkg, err := p.substitute(pyStrip(arg))
		if err != nil {
			return fail(err.Error())
		}
		if _, known := knownImports[pkg]; !known && !p.lenient {
			return fail(fmt.Sprintf("%%import %s: zodbctl cannot load Python schema components; only %s are known", pyRepr(pkg), knownImportList()))
		}
		p.imports = append(p.imports, pkg)
	case "include":
		target, err := p.substitute(pyStrip(arg))
		if err != nil {
			return fail(err.Error())
		}
		path, err := resolveInclude(file, target)
		if err != nil {
			return fail(err.Error())
		}
		return p.include(section, path, &ConfigError{File: file, Line: lineno})
	}
	return nil
}

// resolveInclude resolves an %include argument (a path or a file: URL)
// against the including file's directory, as ZConfig's urljoin does.
func resolveInclude(from, target string) (string, error) {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "file:") {
		u, err := url.Parse(target)
		if err != nil || u.Scheme != "file" {
			return "", fmt.Errorf("%%include %s: only local files can be included", pyRepr(target))
		}
		target = u.Path
	}
	if filepath.IsAbs(target) {
		return target, nil
	}
	return filepath.Join(filepath.Dir(from), target), nil
}

// knownImports are the %import packages whose schema components zodbctl
// implements natively; anything else would need Python.
var knownImports = map[string]string{
	"ZEO":                       "adds <clientstorage>",
	"ZODB":                      "built in",
	"ZConfig.components.logger": "built in",
}

func knownImportList() string {
	return "ZEO, ZODB and ZConfig.components.logger"
}

// substitute applies ZConfig substitution ($name, ${name}, $(ENV), $$).
func (p *parser) substitute(s string) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	rest := s
	for {
		i := strings.IndexByte(rest, '$')
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		b.WriteString(rest[:i])
		rest = rest[i+1:]
		if rest == "" {
			return "", errors.New("illegal lone '$' at end of source")
		}
		var name string
		env := false
		switch rest[0] {
		case '$':
			b.WriteByte('$')
			rest = rest[1:]
			continue
		case '{', '(':
			open, closer := rest[0], byte('}')
			if open == '(' {
				closer, env = ')', true
			}
			name = substNameRE.FindString(rest[1:])
			if name == "" {
				return "", fmt.Errorf("'$%c' not followed by name", open)
			}
			if !strings.HasPrefix(rest[1+len(name):], string(closer)) {
				return "", fmt.Errorf("'$%c%s' not followed by '%c'", open, name, closer)
			}
			rest = rest[2+len(name):]
		default:
			name = substNameRE.FindString(rest)
			if name == "" {
				return "", errors.New("'$' not followed by '$' or name")
			}
			rest = rest[len(name):]
		}
		var v string
		var ok bool
		if env {
			v, ok = os.LookupEnv(name)
		} else {
			v, ok = p.defines[strings.ToLower(name)]
		}
		if !ok {
			return "", fmt.Errorf("no replacement for %s", pyRepr(name))
		}
		b.WriteString(v)
	}
}
