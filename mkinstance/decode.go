package mkinstance

// The typed builders: schema-checked nodes to the Go structs of server.go
// and client.go, converting each value with ZConfig's datatype rules.

import (
	"strconv"
	"strings"
	"time"
)

// decoder converts key values to Go values, keeping the first error.
type decoder struct{ err error }

func (d *decoder) fail(kv KeyValue, err error) {
	if d.err == nil {
		d.err = &ConfigError{File: kv.File, Line: kv.Line, Key: strings.ToLower(kv.Key), Msg: err.Error()}
	}
}

func (d *decoder) str(n *node, key, def string) string {
	if kv, ok := n.value(key); ok {
		return kv.Value
	}
	return def
}

func (d *decoder) conv(n *node, key string, f func(string) error) {
	if kv, ok := n.value(key); ok {
		if err := f(kv.Value); err != nil {
			d.fail(kv, err)
		}
	}
}

func (d *decoder) boolean(n *node, key string, def bool) bool {
	v := def
	d.conv(n, key, func(s string) (err error) { v, err = parseBool(s); return })
	return v
}

func (d *decoder) optBool(n *node, key string) *bool {
	var v *bool
	d.conv(n, key, func(s string) error {
		b, err := parseBool(s)
		v = &b
		return err
	})
	return v
}

func (d *decoder) integer(n *node, key string, def int) int {
	v := def
	d.conv(n, key, func(s string) error {
		i, err := pyInt(s)
		if err == nil && (i > 1<<31-1 || i < -1<<31) {
			return strconv.ErrRange
		}
		v = int(i)
		return err
	})
	return v
}

func (d *decoder) byteSize(n *node, key string, def int64) int64 {
	v := def
	d.conv(n, key, func(s string) (err error) { v, err = ParseByteSize(s); return })
	return v
}

func (d *decoder) interval(n *node, key string, def time.Duration) time.Duration {
	v := def
	d.conv(n, key, func(s string) (err error) { v, err = ParseTimeInterval(s); return })
	return v
}

func (d *decoder) path(n *node, key string, check func(string) (string, error)) string {
	var v string
	d.conv(n, key, func(s string) (err error) { v, err = check(s); return })
	return v
}

func (d *decoder) dottedName(n *node, key string) string {
	var v string
	d.conv(n, key, func(s string) error {
		if !dottedNameRE.MatchString(s) {
			return &valueError{"not a valid dotted name: " + pyRepr(s)}
		}
		v = s
		return nil
	})
	return v
}

type valueError struct{ msg string }

func (e *valueError) Error() string { return e.msg }

func (d *decoder) zeo(n *node) ZEOSection {
	z := ZEOSection{Line: n.sec.Line, InvalidationQueueSize: 100}
	d.conv(n, "address", func(s string) (err error) { z.Address, err = ParseAddress(s, true); return })
	z.ReadOnly = d.boolean(n, "read-only", false)
	z.InvalidationQueueSize = d.integer(n, "invalidation-queue-size", 100)
	d.conv(n, "invalidation-age", func(s string) error {
		f, err := pyFloat(s)
		z.InvalidationAge = &f
		return err
	})
	timeout := d.integer(n, "transaction-timeout", 0)
	z.TransactionTimeout = time.Duration(timeout) * time.Second
	z.PidFilename = d.path(n, "pid-filename", existingDirpath)
	z.ClientConflictResolution = d.boolean(n, "client-conflict-resolution", false)
	z.Msgpack = d.optBool(n, "msgpack")
	for _, c := range n.childrenOf("ssl") {
		z.SSL = d.ssl(c, true)
	}
	return z
}

func (d *decoder) ssl(n *node, server bool) *SSLConfig {
	s := &SSLConfig{
		Certificate:      d.path(n, "certificate", existingDirpath),
		Key:              d.path(n, "key", existingDirpath),
		PasswordFunction: d.str(n, "password-function", ""),
		CheckHostname:    true,
	}
	if server {
		for _, k := range []string{"check-hostname", "server-hostname"} {
			if kv, ok := n.value(k); ok {
				d.fail(kv, &valueError{pyRepr(kv.Key) + " is not a known key name"})
			}
		}
		kv, ok := n.value("authenticate")
		if !ok {
			if d.err == nil {
				d.err = &ConfigError{File: n.sec.File, Line: n.sec.EndLine, Msg: "no values for 'authenticate'; 1 required"}
			}
			return s
		}
		s.Authenticate = kv.Value
		if kv.Value != "DYNAMIC" {
			s.Authenticate = d.path(n, "authenticate", existingDirpath)
		}
		return s
	}
	s.Authenticate = d.path(n, "authenticate", existingDirpath)
	s.CheckHostname = d.boolean(n, "check-hostname", true)
	s.ServerHostname = d.str(n, "server-hostname", "")
	return s
}

func (d *decoder) storage(n *node) StorageConfig {
	s := StorageConfig{Name: n.sec.Name, Unnamed: n.sec.Name == "", Kind: n.info.typ, File: n.sec.File, Line: n.sec.Line}
	switch n.info.typ {
	case KindFileStorage:
		s.FileStorage = &FileStorageConfig{
			Path:        d.path(n, "path", existingDirpath),
			Create:      d.boolean(n, "create", false),
			ReadOnly:    d.boolean(n, "read-only", false),
			Quota:       d.byteSize(n, "quota", 0),
			Packer:      d.str(n, "packer", ""),
			PackGC:      d.boolean(n, "pack-gc", true),
			PackKeepOld: d.boolean(n, "pack-keep-old", true),
		}
		if kv, ok := n.value("blob-dir"); ok && kv.Value != "" {
			s.FileStorage.BlobDir = d.path(n, "blob-dir", existingDirpath)
		}
	case KindMappingStorage:
		s.Mapping = &MappingStorageConfig{Name: d.str(n, "name", "Mapping Storage")}
	case KindDemoStorage:
		demo := &DemoStorageConfig{Name: d.str(n, "name", "")}
		for _, c := range n.children {
			sub := d.storage(c)
			if c.sec.Name == "changes" {
				demo.Changes = &sub
				continue
			}
			if demo.Base != nil && d.err == nil {
				d.err = &ConfigError{File: c.sec.File, Line: c.sec.Line, Msg: "Too many base storages defined!"}
			}
			demo.Base = &sub
		}
		s.Demo = demo
	case KindBlobStorage:
		s.Blob = &BlobStorageConfig{BlobDir: d.str(n, "blob-dir", ""), Base: d.storage(n.children[0])}
	case KindZEOClient, KindClientStorage:
		s.Client = d.client(n)
	default:
		if d.err == nil {
			d.err = &ConfigError{File: n.sec.File, Line: n.sec.Line,
				Msg: "storage type " + pyRepr(n.info.typ) + " is not supported (BerkeleyDB storages no longer exist)"}
		}
	}
	return s
}

func (d *decoder) client(n *node) *ClientStorageConfig {
	c := &ClientStorageConfig{
		Storage:            d.str(n, "storage", "1"),
		CacheSize:          d.byteSize(n, "cache-size", 20<<20),
		Name:               d.str(n, "name", ""),
		Client:             d.str(n, "client", ""),
		Var:                d.str(n, "var", ""),
		CachePath:          d.str(n, "cache-path", ""),
		BlobDir:            d.str(n, "blob-dir", ""),
		SharedBlobDir:      d.boolean(n, "shared-blob-dir", false),
		BlobCacheSize:      d.byteSize(n, "blob-cache-size", 0),
		BlobCacheSizeCheck: d.integer(n, "blob-cache-size-check", 10),
		Wait:               d.boolean(n, "wait", true),
		WaitTimeout:        time.Duration(d.integer(n, "wait-timeout", 30)) * time.Second,
		ReadOnly:           d.boolean(n, "read-only", false),
		ReadOnlyFallback:   d.boolean(n, "read-only-fallback", false),
		ServerSync:         d.boolean(n, "server-sync", false),
		ClientLabel:        d.str(n, "client-label", ""),
	}
	for _, k := range []string{"min-disconnect-poll", "max-disconnect-poll"} {
		d.integer(n, k, 0)
	}
	d.boolean(n, "drop-cache-rather-verify", false)
	for _, kv := range n.values["server"] {
		a, err := ParseAddress(kv.Value, false)
		if err != nil {
			d.fail(kv, err)
		}
		c.Servers = append(c.Servers, a)
	}
	for _, sc := range n.childrenOf("ssl") {
		c.SSL = d.ssl(sc, false)
	}
	return c
}

func (d *decoder) logConfig(n *node) *LogConfig {
	l := &LogConfig{Level: 20}
	d.conv(n, "level", func(s string) (err error) { l.Level, err = LogLevel(s); return })
	for _, c := range n.children {
		h := LogHandler{Kind: c.info.typ, Line: c.sec.Line, DateFormat: DefaultDateFormat, Style: "classic",
			Settings: map[string]string{}}
		d.conv(c, "level", func(s string) (err error) { h.Level, err = LogLevel(s); return })
		h.Format = d.str(c, "format", "")
		h.DateFormat = d.str(c, "dateformat", DefaultDateFormat)
		h.Style = d.str(c, "style", "classic")
		switch h.Style {
		case "classic", "format", "template", "safe-template":
		default:
			kv, _ := c.value("style")
			d.fail(kv, &valueError{"style must be one of classic, format, template, safe-template: " + pyRepr(h.Style)})
		}
		d.boolean(c, "arbitrary-fields", false)
		d.dottedName(c, "formatter")
		if h.Kind == "logfile" {
			if h.Format == "" {
				h.Format = DefaultLogFormat
			}
			h.Format = unescapeFormat(h.Format)
			h.Path = d.str(c, "path", "")
			if h.Path != "STDOUT" && h.Path != "STDERR" {
				h.Path = d.path(c, "path", existingDirpath)
			}
			h.OldFiles = d.integer(c, "old-files", 0)
			h.MaxSize = d.byteSize(c, "max-size", 0)
			h.When = d.str(c, "when", "")
			h.Interval = d.integer(c, "interval", 0)
			h.Encoding = d.str(c, "encoding", "")
			h.Delay = d.boolean(c, "delay", false)
			d.checkLogfile(c, h)
		}
		for k, kvs := range c.values {
			h.Settings[k] = kvs[0].Value
		}
		l.Handlers = append(l.Handlers, h)
	}
	return l
}

// checkLogfile applies the ZConfig logger's rules on combinations.
func (d *decoder) checkLogfile(n *node, h LogHandler) {
	fail := func(msg string) {
		if d.err == nil {
			d.err = &ConfigError{File: n.sec.File, Line: n.sec.EndLine, Msg: msg}
		}
	}
	rotating := h.MaxSize > 0 || h.When != ""
	switch {
	case (h.Path == "STDOUT" || h.Path == "STDERR") && (h.Encoding != "" || h.Delay || rotating || h.OldFiles > 0):
		fail("encoding, delay and rotation cannot be used with " + h.Path)
	case h.MaxSize > 0 && h.When != "":
		fail("only one of 'max-size' and 'when' may be given")
	case rotating && h.OldFiles <= 0:
		fail("rotation ('max-size' or 'when') needs 'old-files' > 0")
	}
}

// unescapeFormat understands the escapes ZConfig's logger allows in format.
func unescapeFormat(s string) string {
	r := strings.NewReplacer(`\n`, "\n", `\t`, "\t", `\r`, "\r", `\b`, "\b", `\f`, "\f")
	return r.Replace(s)
}

func (d *decoder) runner(n *node) *RunnerConfig {
	r := &RunnerConfig{
		Program:              pySplit(d.str(n, "program", "")),
		Python:               d.path(n, "python", existingPath),
		Zdrun:                d.path(n, "zdrun", existingPath),
		SocketName:           d.path(n, "socket-name", existingParentDirpath),
		Daemon:               d.boolean(n, "daemon", true),
		Directory:            d.path(n, "directory", existingParentDirectory),
		BackoffLimit:         d.integer(n, "backoff-limit", 10),
		Forever:              d.boolean(n, "forever", false),
		ExitCodes:            []int{0, 2},
		StartTestProgram:     pySplit(d.str(n, "start-test-program", "")),
		StartTimeout:         time.Duration(d.integer(n, "start-timeout", 300)) * time.Second,
		StopTimeout:          time.Duration(d.integer(n, "stop-timeout", 300)) * time.Second,
		User:                 d.str(n, "user", ""),
		Umask:                0o22,
		HangAround:           d.boolean(n, "hang-around", false),
		DefaultToInteractive: d.boolean(n, "default-to-interactive", true),
		Logfile:              d.path(n, "logfile", existingDirpath),
		Transcript:           d.path(n, "transcript", existingDirpath),
		Prompt:               d.str(n, "prompt", ""),
	}
	if r.SocketName == "" {
		r.SocketName = "zdsock"
	}
	d.conv(n, "exit-codes", func(s string) error {
		r.ExitCodes = nil
		for _, part := range strings.Split(s, ",") {
			c, err := pyInt(part)
			if err != nil {
				return err
			}
			r.ExitCodes = append(r.ExitCodes, int(c))
		}
		return nil
	})
	d.conv(n, "umask", func(s string) error {
		u, err := strconv.ParseUint(strings.TrimSpace(s), 8, 32)
		if err != nil {
			return &valueError{"invalid literal for int() with base 8: " + pyRepr(s)}
		}
		r.Umask = int(u)
		return nil
	})
	for _, c := range n.childrenOf("eventlog") {
		r.EventLog = d.logConfig(c)
	}
	return r
}
