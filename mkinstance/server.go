package mkinstance

import (
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ServerConfig is a loaded zeo.conf: what `zodbctl serve` needs to run a ZEO
// server (zeo-config.md §3–7). Optional settings that Python leaves as None
// are pointers (nil = not set) where "unset" and a zero value differ.
type ServerConfig struct {
	File     string            // the configuration file as given
	Instance string            // instance home: the INSTANCE define in effect ("" if none)
	Defines  map[string]string // every define in effect at the end of the file (lower-cased names)
	ZEO      ZEOSection
	Storages []StorageConfig // in file order
	EventLog *LogConfig      // nil: log to stderr at INFO (runzeo's default)
	Runner   *RunnerConfig   // nil: no <runner> section
}

// ZEOSection is the <zeo> section.
type ZEOSection struct {
	Address                  Address
	ReadOnly                 bool
	InvalidationQueueSize    int      // default 100
	InvalidationAge          *float64 // seconds; nil: not set
	TransactionTimeout       time.Duration
	PidFilename              string // "" if not set
	ClientConflictResolution bool
	Msgpack                  *bool // nil: use the ZEO_MSGPACK environment variable
	SSL                      *SSLConfig
	Line                     int // line of the <zeo> header
}

// SSLConfig is <ssl> inside <zeo> (server) or <clientstorage> (client).
type SSLConfig struct {
	Certificate      string
	Key              string
	PasswordFunction string
	Authenticate     string // server: CA file/dir for client certificates, or "DYNAMIC"
	CheckHostname    bool   // client only; default true
	ServerHostname   string // client only
}

// Storage kinds, the section type names.
const (
	KindFileStorage    = "filestorage"
	KindMappingStorage = "mappingstorage"
	KindDemoStorage    = "demostorage"
	KindBlobStorage    = "blobstorage"
	KindZEOClient      = "zeoclient"
	KindClientStorage  = "clientstorage"
)

// StorageConfig is one storage section. Kind says which of the pointer
// fields is set.
type StorageConfig struct {
	Name    string // the section name, lower-cased; "1" for the one unnamed storage
	Unnamed bool   // the section had no name
	Kind    string
	File    string // where the section is, for messages
	Line    int

	FileStorage *FileStorageConfig
	Mapping     *MappingStorageConfig
	Demo        *DemoStorageConfig
	Blob        *BlobStorageConfig
	Client      *ClientStorageConfig // zeoclient and clientstorage
}

// FileStorageConfig is <filestorage>.
type FileStorageConfig struct {
	Path        string
	BlobDir     string // "" = no blobs
	Create      bool
	ReadOnly    bool
	Quota       int64 // bytes; 0 = none
	Packer      string
	PackGC      bool // default true
	PackKeepOld bool // default true
}

// MappingStorageConfig is <mappingstorage>.
type MappingStorageConfig struct {
	Name string // default "Mapping Storage"
}

// DemoStorageConfig is <demostorage>: an optional base and changes storage.
type DemoStorageConfig struct {
	Name    string
	Base    *StorageConfig
	Changes *StorageConfig
}

// BlobStorageConfig is <blobstorage>: blobs added to a base storage.
type BlobStorageConfig struct {
	BlobDir string
	Base    StorageConfig
}

// ClientStorageConfig is a ZEO client: <zeoclient> (ZODB) or <clientstorage>
// (ZEO, after %import ZEO); the keys one of them lacks keep their defaults.
type ClientStorageConfig struct {
	Servers            []Address
	Storage            string // default "1"
	CacheSize          int64  // default 20MB
	Name               string
	Client             string // persistent cache name (zeoclient)
	Var                string // persistent cache directory (zeoclient)
	CachePath          string // persistent cache file (clientstorage)
	BlobDir            string
	SharedBlobDir      bool
	BlobCacheSize      int64 // 0: none
	BlobCacheSizeCheck int   // percent, default 10
	Wait               bool  // default true
	WaitTimeout        time.Duration
	ReadOnly           bool
	ReadOnlyFallback   bool
	ServerSync         bool
	ClientLabel        string
	SSL                *SSLConfig
}

// LogConfig is <eventlog> (or a <logger>).
type LogConfig struct {
	Level    int // Python logging level, default 20 (INFO)
	Handlers []LogHandler
}

// LogHandler is one handler section of <eventlog>. Path, OldFiles, MaxSize,
// When, Interval, Encoding and Delay are <logfile>'s; other handler types
// keep their keys in Settings.
type LogHandler struct {
	Kind       string // logfile, syslog, email-notifier, http-logger, win32-eventlog
	Level      int    // default 0 (NOTSET)
	Format     string
	DateFormat string
	Style      string
	Path       string // STDOUT and STDERR name the standard streams
	OldFiles   int
	MaxSize    int64
	When       string
	Interval   int
	Encoding   string
	Delay      bool
	Settings   map[string]string
	Line       int
}

// Default log format and date format of runzeo and <logfile>.
const (
	DefaultLogFormat  = "------\n%(asctime)s %(levelname)s %(name)s %(message)s"
	DefaultDateFormat = "%Y-%m-%dT%H:%M:%S"
)

// RunnerConfig is zdaemon's <runner> section (zeo-config.md §7).
type RunnerConfig struct {
	Program              []string
	Python               string
	Zdrun                string
	SocketName           string
	Daemon               bool // default true
	Directory            string
	BackoffLimit         int // default 10
	Forever              bool
	ExitCodes            []int // default 0, 2
	StartTestProgram     []string
	StartTimeout         time.Duration // default 300 s
	StopTimeout          time.Duration // default 300 s
	User                 string
	Umask                int // default 022
	HangAround           bool
	DefaultToInteractive bool // default true
	Logfile              string
	Transcript           string
	Prompt               string
	EventLog             *LogConfig
}

// Options tune loading.
type Options struct {
	// Defines are predefined names (-X NAME=VALUE): they win over the file's
	// own %define of the same name.
	Defines map[string]string
	// NoDefaultInstance turns off the INSTANCE default (the instance home).
	NoDefaultInstance bool
	// Overrides set keys as runzeo's -X SECTION/…/KEY=VALUE does, after the
	// file is read: each path element selects the first subsection with
	// that name or type; the value replaces the key's values there (it is
	// not substituted). Several overrides of one key add values.
	Overrides []Override
}

// Override is one -X path=value key override.
type Override struct {
	Path  string // e.g. "zeo/address", "filestorage/read-only", "1/path"
	Value string
}

// overrideFile names the command line in messages about overridden keys.
const overrideFile = "-X"

func applyOverride(top *Section, o Override) error {
	parts := strings.Split(strings.ToLower(o.Path), "/")
	for _, p := range parts {
		if p == "" {
			return &ConfigError{File: overrideFile, Msg: "'//' is not allowed in an option path"}
		}
	}
	// As ZConfig's option bag: each path element goes to the first
	// subsection, in file order, whose name or type it is.
	sec := top
	for _, p := range parts[:len(parts)-1] {
		var next *Section
		for _, c := range sec.Children {
			if c.Name == p || c.Type == p {
				next = c
				break
			}
		}
		if next == nil {
			return &ConfigError{File: overrideFile, Msg: "not all command line options were consumed"}
		}
		sec = next
	}
	key := parts[len(parts)-1]
	kept := sec.Keys[:0]
	for _, kv := range sec.Keys {
		if strings.ToLower(kv.Key) != key || kv.File == overrideFile {
			kept = append(kept, kv)
		}
	}
	sec.Keys = append(kept, KeyValue{Key: key, Value: o.Value, File: overrideFile})
	return nil
}

// InstanceHome is the default for $INSTANCE: the parent of the folder
// holding the configuration file when that folder is named etc (the layout
// mkzeoinstance makes), else the configuration file's folder.
func InstanceHome(configPath string) string {
	abs, err := filepath.Abs(configPath)
	if err != nil {
		abs = configPath
	}
	dir := filepath.Dir(abs)
	if filepath.Base(dir) == "etc" {
		return filepath.Dir(dir)
	}
	return dir
}

// load parses path into a tree checked against the given top-level rules.
func load(path string, opts Options, top []childInfo, lenient bool) (*node, *parser, error) {
	p := &parser{defines: map[string]string{}, fixed: map[string]bool{}, soft: map[string]bool{}, lenient: lenient}
	for k, v := range opts.Defines {
		k = strings.ToLower(k)
		p.defines[k], p.fixed[k] = v, true
	}
	if _, ok := p.defines["instance"]; !ok && !opts.NoDefaultInstance {
		p.defines["instance"], p.soft["instance"] = InstanceHome(path), true
	}
	tree, err := p.parseFile(path)
	if err != nil {
		return nil, nil, err
	}
	for _, o := range opts.Overrides {
		if err := applyOverride(tree, o); err != nil {
			return nil, nil, err
		}
	}
	m := &matcher{schema: newSchema(), imports: map[string]bool{}, skipUnknown: lenient}
	for _, imp := range p.imports {
		m.imports[imp] = true
	}
	n, err := m.match(tree, &sectionInfo{}, top, nil, lenient)
	if err != nil {
		if ce, ok := err.(*ConfigError); ok && ce.File == "" {
			ce.File = path
		}
		return nil, nil, err
	}
	return n, p, nil
}

// LoadServerConfig reads a zeo.conf with the ZEO server schema and runzeo's
// own checks (one unnamed storage at most; an address is required).
// Existing-path checks look at the disk, as ZConfig does; no storage is
// opened. Errors are *ConfigError.
func LoadServerConfig(path string, opts Options) (*ServerConfig, error) {
	top := []childInfo{{typ: "zeo", min: 1, max: 1}, {typ: absStorage, min: 1, max: -1},
		{typ: "eventlog", max: 1}, {typ: "runner", max: 1}}
	n, p, err := load(path, opts, top, false)
	if err != nil {
		return nil, err
	}
	d := &decoder{}
	cfg := &ServerConfig{File: path, Defines: p.defines, Instance: p.defines["instance"]}
	for _, c := range n.children {
		switch c.info.typ {
		case "zeo":
			cfg.ZEO = d.zeo(c)
		case "eventlog":
			cfg.EventLog = d.logConfig(c)
		case "runner":
			cfg.Runner = d.runner(c)
		default:
			cfg.Storages = append(cfg.Storages, d.storage(c))
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	zeoNode := n.childrenOf("zeo")[0]
	if _, ok := zeoNode.value("address"); !ok {
		return nil, &ConfigError{File: zeoNode.sec.File, Line: zeoNode.sec.Line,
			Msg: "no server address specified; use -a or -C"}
	}
	unnamed := 0
	named1 := false
	for i := range cfg.Storages {
		s := &cfg.Storages[i]
		if s.Unnamed {
			unnamed++
			s.Name = "1"
		} else if s.Name == "1" {
			named1 = true
		}
	}
	if unnamed > 1 {
		return nil, &ConfigError{File: path, Msg: "No more than one storage may be unnamed."}
	}
	if unnamed == 1 && named1 {
		return nil, &ConfigError{File: path, Msg: "Can't have an unnamed storage and a storage named 1."}
	}
	return cfg, nil
}

// PidFile is where runzeo writes its pid: pid-filename, else
// $INSTANCE_HOME/var/ZEO.pid when instanceHome (the environment variable) is
// set, else "" (none). A read-only server writes none.
func (c *ServerConfig) PidFile(instanceHome string) string {
	if c.ZEO.ReadOnly {
		return ""
	}
	if c.ZEO.PidFilename != "" {
		return c.ZEO.PidFilename
	}
	if instanceHome != "" {
		return filepath.Join(instanceHome, "var", "ZEO.pid")
	}
	return ""
}

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
		Program:              strings.Fields(d.str(n, "program", "")),
		Python:               d.path(n, "python", existingPath),
		Zdrun:                d.path(n, "zdrun", existingPath),
		SocketName:           d.path(n, "socket-name", existingParentDirpath),
		Daemon:               d.boolean(n, "daemon", true),
		Directory:            d.path(n, "directory", existingParentDirectory),
		BackoffLimit:         d.integer(n, "backoff-limit", 10),
		Forever:              d.boolean(n, "forever", false),
		ExitCodes:            []int{0, 2},
		StartTestProgram:     strings.Fields(d.str(n, "start-test-program", "")),
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

// FlagConfig is the configuration runzeo builds from its command line when
// there is no -C: -a ADDRESS and one <filestorage> per -f PATH, named 1, 2,
// … in order. Errors carry runzeo's messages.
func FlagConfig(address string, files []string) (*ServerConfig, error) {
	if address == "" {
		return nil, &ConfigError{Msg: "no server address specified; use -a or -C"}
	}
	if len(files) == 0 {
		return nil, &ConfigError{Msg: "no storages specified; use -f or -C"}
	}
	a, err := ParseAddress(address, true)
	if err != nil {
		return nil, &ConfigError{Key: "address", Msg: err.Error()}
	}
	cfg := &ServerConfig{Defines: map[string]string{}, ZEO: ZEOSection{Address: a, InvalidationQueueSize: 100}}
	if cfg.Storages, err = FileStorages(files); err != nil {
		return nil, err
	}
	return cfg, nil
}

// FileStorages makes runzeo's storages for -f PATH …: FileStorages named
// 1, 2, … with default settings.
func FileStorages(files []string) ([]StorageConfig, error) {
	var out []StorageConfig
	for i, f := range files {
		path, err := existingDirpath(f)
		if err != nil {
			return nil, &ConfigError{Key: "path", Msg: err.Error()}
		}
		out = append(out, StorageConfig{Name: strconv.Itoa(i + 1), Kind: KindFileStorage,
			FileStorage: &FileStorageConfig{Path: path, PackGC: true, PackKeepOld: true}})
	}
	return out, nil
}
