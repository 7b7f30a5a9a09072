package mkinstance

import (
	"fmt"
	"strings"
)

// The schema says, per section type, which keys and subsections it accepts;
// it mirrors the ZConfig schemas of ZEO, ZODB, zdaemon and the ZConfig logger
// (zeo-config.md §3–8). Conversion of values happens later, in the typed
// builders (server.go, client.go), with each key's line for error messages.

type nameRule int

const (
	nameOptional nameRule = iota
	nameRequired
)

type keyInfo struct {
	name     string
	required bool
	multi    bool
}

// childInfo allows subsections of a concrete type or of any type that
// implements an abstract type.
type childInfo struct {
	typ      string // concrete type, or abstract type name
	min, max int    // max < 0: unbounded
}

type sectionInfo struct {
	typ        string
	implements string // abstract type, "" if none
	keys       []keyInfo
	children   []childInfo
	names      nameRule
	anyKeys    bool // zope.conf's <zodb_db>: unknown keys are Zope's business
	needImport string
}

type schema struct {
	types     map[string]*sectionInfo
	abstracts map[string]bool
}

func keys(names ...string) []keyInfo {
	out := make([]keyInfo, len(names))
	for i, n := range names {
		k := keyInfo{name: n}
		for {
			switch {
			case strings.HasSuffix(k.name, "!"):
				k.required, k.name = true, strings.TrimSuffix(k.name, "!")
				continue
			case strings.HasSuffix(k.name, "*"):
				k.multi, k.name = true, strings.TrimSuffix(k.name, "*")
				continue
			}
			break
		}
		out[i] = k
	}
	return out
}

const (
	absStorage = "zodb.storage"
	absHandler = "zconfig.logger.handler"
)

var handlerCommon = []string{"level", "formatter", "dateformat", "style", "arbitrary-fields", "format"}

func sectionTypes() []*sectionInfo {
	storage := []childInfo{{typ: absStorage, min: 1, max: 1}}
	return []*sectionInfo{
		{typ: "zeo", keys: keys("address", "read-only", "invalidation-queue-size", "invalidation-age",
			"transaction-timeout", "pid-filename", "client-conflict-resolution", "msgpack"),
			children: []childInfo{{typ: "ssl", max: 1}}},
		{typ: "ssl", keys: keys("certificate!", "key", "password-function", "authenticate", "check-hostname", "server-hostname")},
		{typ: "filestorage", implements: absStorage, keys: keys("path!", "blob-dir", "create", "read-only",
			"quota", "packer", "pack-gc", "pack-keep-old")},
		{typ: "mappingstorage", implements: absStorage, keys: keys("name")},
		{typ: "demostorage", implements: absStorage, keys: keys("name"),
			children: []childInfo{{typ: absStorage, max: -1}}},
		{typ: "blobstorage", implements: absStorage, keys: keys("blob-dir!"), children: storage},
		{typ: "zeoclient", implements: absStorage, keys: keys("server*!", "storage", "cache-size", "name",
			"client", "var", "blob-dir", "shared-blob-dir", "blob-cache-size", "blob-cache-size-check",
			"wait", "read-only", "read-only-fallback", "client-label", "min-disconnect-poll",
			"max-disconnect-poll", "drop-cache-rather-verify", "username", "password", "realm")},
		{typ: "clientstorage", implements: absStorage, needImport: "ZEO", keys: keys("server*!", "storage",
			"cache-size", "name", "cache-path", "blob-dir", "shared-blob-dir", "blob-cache-size",
			"blob-cache-size-check", "read-only", "read-only-fallback", "server-sync", "wait-timeout",
			"client-label"),
			children: []childInfo{{typ: "ssl", max: 1}}},
		{typ: "fullstorage", implements: absStorage, keys: keys("envdir!", "interval", "kbyte", "min",
			"logdir", "cachesize", "frequency", "packtime", "gcpack", "read-only")},
		{typ: "minimalstorage", implements: absStorage, keys: keys("envdir!", "interval", "kbyte", "min",
			"logdir", "cachesize", "frequency", "packtime", "gcpack", "read-only")},
		{typ: "eventlog", keys: keys("level"), children: []childInfo{{typ: absHandler, max: -1}}},
		{typ: "logger", keys: keys("level", "name", "propagate"), children: []childInfo{{typ: absHandler, max: -1}}},
		{typ: "logfile", implements: absHandler, keys: keys(append([]string{"path!", "old-files", "max-size",
			"when", "interval", "encoding", "delay"}, handlerCommon...)...)},
		{typ: "syslog", implements: absHandler, keys: keys(append([]string{"facility", "address"}, handlerCommon...)...)},
		{typ: "email-notifier", implements: absHandler, keys: keys(append([]string{"from!", "to*!", "subject",
			"smtp-server", "smtp-username", "smtp-password"}, handlerCommon...)...)},
		{typ: "http-logger", implements: absHandler, keys: keys(append([]string{"url", "method"}, handlerCommon...)...)},
		{typ: "win32-eventlog", implements: absHandler, keys: keys(append([]string{"appname"}, handlerCommon...)...)},
		{typ: "runner", keys: keys("program!", "python", "zdrun", "socket-name", "daemon", "directory",
			"backoff-limit", "forever", "exit-codes", "start-test-program", "start-timeout", "stop-timeout",
			"user", "umask", "hang-around", "default-to-interactive", "logfile", "transcript", "prompt"),
			children: []childInfo{{typ: "eventlog", max: 1}}},
		{typ: "zodb", keys: keys("cache-size", "cache-size-bytes", "large-record-size", "pool-size",
			"pool-timeout", "historical-pool-size", "historical-cache-size", "historical-cache-size-bytes",
			"historical-timeout", "database-name", "allow-implicit-cross-references", "class-factory"),
			children: storage},
		{typ: "zodb_db", anyKeys: true, children: []childInfo{{typ: absStorage, max: 1}}},
	}
}

func newSchema() *schema {
	s := &schema{types: map[string]*sectionInfo{}, abstracts: map[string]bool{}}
	for _, t := range sectionTypes() {
		s.types[t.typ] = t
		if t.implements != "" {
			s.abstracts[t.implements] = true
		}
	}
	return s
}

// The client-side "ssl" differs from the server's only in which keys are
// required; both are checked by the builders, so one section type serves.

// node is a section checked against the schema.
type node struct {
	sec      *Section
	info     *sectionInfo
	values   map[string][]KeyValue // lower-cased key → lines
	children []*node
	unknown  []*Section // sections of types the schema does not know (zodb_db only)
}

func (n *node) value(key string) (KeyValue, bool) {
	v := n.values[key]
	if len(v) == 0 {
		return KeyValue{}, false
	}
	return v[0], true
}

func (n *node) childrenOf(typ string) []*node {
	var out []*node
	for _, c := range n.children {
		if c.info.typ == typ || c.info.implements == typ {
			out = append(out, c)
		}
	}
	return out
}

// removedKeyHints explain keys that ZEO 4 accepted and ZEO 5 rejects.
var removedKeyHints = map[string]string{
	"zeo/monitor-address":          "ZEO 5 has no monitor port (server status: zodbctl connect … status)",
	"zeo/authentication-protocol":  "ZEO 5 removed authentication; use <ssl> with client certificates",
	"zeo/authentication-database":  "ZEO 5 removed authentication; use <ssl> with client certificates",
	"zeo/authentication-realm":     "ZEO 5 removed authentication; use <ssl> with client certificates",
	"zeo/drop-cache-rather-verify": "removed in ZEO 5 (a client setting of <zeoclient>)",
}

// matcher checks a parsed tree against the schema.
type matcher struct {
	schema  *schema
	imports map[string]bool
	// skipUnknown: at the top level of a zope.conf, sections and keys that
	// are not ZODB's are ignored.
	skipUnknown bool
}

var basicKeyRE = mustRE(`^[a-zA-Z][-._a-zA-Z0-9]*$`)

// match checks sec (of type info) and its subsections; children lists what
// subsections the container allows.
func (m *matcher) match(sec *Section, info *sectionInfo, children []childInfo, keySpecs []keyInfo, anyKeys bool) (*node, error) {
	n := &node{sec: sec, info: info, values: map[string][]KeyValue{}}
	known := map[string]keyInfo{}
	for _, k := range keySpecs {
		known[k.name] = k
	}
	for _, kv := range sec.Keys {
		if !basicKeyRE.MatchString(kv.Key) {
			if anyKeys {
				continue
			}
			return nil, &ConfigError{File: kv.File, Line: kv.Line,
				Msg: "value did not match regular expression: " + pyRepr(kv.Key)}
		}
		key := strings.ToLower(kv.Key)
		k, ok := known[key]
		if !ok {
			if anyKeys {
				continue
			}
			return nil, &ConfigError{File: kv.File, Line: kv.Line, Msg: pyRepr(kv.Key) + " is not a known key name",
				Hint: removedKeyHints[sec.Type+"/"+key]}
		}
		if !k.multi && len(n.values[key]) > 0 {
			return nil, &ConfigError{File: kv.File, Line: kv.Line, Msg: pyRepr(kv.Key) + " does not support multiple values"}
		}
		n.values[key] = append(n.values[key], kv)
	}
	names := map[string]bool{}
	counts := make([]int, len(children))
	for _, c := range sec.Children {
		ci, ok := m.schema.types[c.Type]
		if ok && ci.needImport != "" && !m.imports[ci.needImport] {
			ok = false
		}
		if !ok && m.schema.abstracts[c.Type] {
			return nil, &ConfigError{File: c.File, Line: c.Line,
				Msg: "concrete sections cannot match abstract section types; found abstract type " + pyRepr(c.Type)}
		}
		if !ok {
			if anyKeys && sec.Type != "" {
				// Inside zope.conf's <zodb_db>: remember the type so the
				// caller can say which storage it cannot use.
				n.unknown = append(n.unknown, c)
				continue
			}
			if m.skipUnknown && sec.Type == "" {
				continue
			}
			return nil, &ConfigError{File: c.File, Line: c.Line, Msg: "unknown type name: " + pyRepr(c.Type)}
		}
		slot := -1
		for i, allowed := range children {
			if allowed.typ == ci.typ || allowed.typ == ci.implements {
				slot = i
				break
			}
		}
		if slot < 0 {
			if m.skipUnknown && sec.Type == "" {
				continue
			}
			name := "None"
			if c.Name != "" {
				name = c.Name
			}
			return nil, &ConfigError{File: c.File, Line: c.Line,
				Msg: fmt.Sprintf("no matching section defined for type=%s, name=%s", pyRepr(c.Type), pyRepr(name))}
		}
		if c.Name != "" {
			if names[c.Name] {
				return nil, &ConfigError{File: c.File, Line: c.EndLine,
					Msg: "section names must not be re-used within the same container:" + pyRepr(c.Name)}
			}
			names[c.Name] = true
		} else if ci.names == nameRequired {
			return nil, &ConfigError{File: c.File, Line: c.Line, Msg: pyRepr(c.Type) + " sections may not be unnamed"}
		}
		counts[slot]++
		if max := children[slot].max; max >= 0 && counts[slot] > max {
			return nil, &ConfigError{File: c.File, Line: c.Line,
				Msg: fmt.Sprintf("too many instances of %s section", pyRepr(children[slot].typ))}
		}
		child, err := m.match(c, ci, ci.children, ci.keys, ci.anyKeys)
		if err != nil {
			return nil, err
		}
		n.children = append(n.children, child)
	}
	endLine := sec.EndLine
	for _, k := range keySpecs {
		if k.required && len(n.values[k.name]) == 0 {
			return nil, &ConfigError{File: sec.File, Line: endLine,
				Msg: fmt.Sprintf("no values for %s; 1 required", pyRepr(k.name))}
		}
	}
	for i, allowed := range children {
		if counts[i] >= allowed.min {
			continue
		}
		what := "section type " + pyRepr(allowed.typ)
		if allowed.max == 1 {
			return nil, &ConfigError{File: sec.File, Line: endLine,
				Msg: fmt.Sprintf("no values for %s; %d required", what, allowed.min)}
		}
		return nil, &ConfigError{File: sec.File, Line: endLine,
			Msg: fmt.Sprintf("not enough values for %s; %d found, %d required", what, counts[i], allowed.min)}
	}
	return n, nil
}
