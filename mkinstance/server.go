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
