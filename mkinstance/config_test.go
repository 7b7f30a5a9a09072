package mkinstance

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeConf writes text as dir/etc/zeo.conf (creating dir/var) and returns
// its path.
func writeConf(t *testing.T, dir, text string) string {
	t.Helper()
	for _, d := range []string{"etc", "var", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "etc", "zeo.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const seedConf = `<zeo>
    address 8800
    read-only false
    invalidation-queue-size 100
</zeo>
<filestorage 1>
    path $INSTANCE/var/Data1.fs
</filestorage>
<filestorage 2>
    path $INSTANCE/var/Data2.fs
</filestorage>
`

func TestSeedConfig(t *testing.T) {
	home := t.TempDir()
	path := writeConf(t, home, seedConf)
	cfg, err := LoadServerConfig(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := ZEOSection{Address: Address{Host: "", Port: 8800}, InvalidationQueueSize: 100, Line: 1}
	if !reflect.DeepEqual(cfg.ZEO, want) {
		t.Errorf("zeo = %+v, want %+v", cfg.ZEO, want)
	}
	if len(cfg.Storages) != 2 {
		t.Fatalf("storages = %+v", cfg.Storages)
	}
	for i, s := range cfg.Storages {
		name := []string{"1", "2"}[i]
		wantFS := FileStorageConfig{Path: filepath.Join(home, "var", "Data"+name+".fs"), PackGC: true, PackKeepOld: true}
		if s.Name != name || s.Kind != KindFileStorage || !reflect.DeepEqual(*s.FileStorage, wantFS) {
			t.Errorf("storage %d = %+v %+v, want %s %+v", i, s, s.FileStorage, name, wantFS)
		}
	}
	if cfg.EventLog != nil || cfg.Runner != nil || cfg.Instance != home {
		t.Errorf("eventlog %v runner %v instance %q", cfg.EventLog, cfg.Runner, cfg.Instance)
	}

	// Explicit define overrides the default; the reference behaviour (no
	// default) is available and gives ZConfig's message.
	other := t.TempDir()
	os.Mkdir(filepath.Join(other, "var"), 0o755)
	cfg, err = LoadServerConfig(path, Options{Defines: map[string]string{"INSTANCE": other}})
	if err != nil || cfg.Storages[0].FileStorage.Path != filepath.Join(other, "var", "Data1.fs") {
		t.Errorf("with -X INSTANCE: %v %+v", err, cfg)
	}
	_, err = LoadServerConfig(path, Options{NoDefaultInstance: true})
	wantMsg := "no replacement for 'INSTANCE' (line 7, in file://" + path + ")"
	if err == nil || err.Error() != wantMsg {
		t.Errorf("no default: %v, want %s", err, wantMsg)
	}
	// Missing var directory.
	missing := filepath.Join(t.TempDir(), "nowhere")
	_, err = LoadServerConfig(path, Options{Defines: map[string]string{"instance": missing}})
	wantMsg = "The directory named as part of the path " + missing + "/var/Data1.fs does not exist. (key 'path', line 7, in file://" + path + ")"
	if err == nil || err.Error() != wantMsg {
		t.Errorf("missing var: %v\nwant %s", err, wantMsg)
	}
	// A %define in the file replaces the default INSTANCE silently.
	path2 := writeConf(t, home, "%define INSTANCE "+other+"\n"+seedConf)
	cfg, err = LoadServerConfig(path2, Options{})
	if err != nil || cfg.Storages[1].FileStorage.Path != filepath.Join(other, "var", "Data2.fs") {
		t.Errorf("file define: %v %+v", err, cfg)
	}
	// Outside an etc/ folder INSTANCE is the config's own folder.
	if got := InstanceHome("/srv/zeo/zeo.conf"); got != "/srv/zeo" {
		t.Errorf("InstanceHome = %q", got)
	}
}

func TestServerConfigAccept(t *testing.T) {
	t.Setenv("MYPORT", "27555")
	const zeo = "<zeo>\naddress 8800\n</zeo>\n"
	const fs = "<filestorage>\npath $INSTANCE/var/Data.fs\n</filestorage>\n"
	cases := []struct {
		name  string
		text  string
		files map[string]string
		check func(t *testing.T, c *ServerConfig, home string)
	}{
		{"case insensitive", "<ZEO>\nADDRESS localhost:8800\nRead-Only TRUE\n</ZEO>\n<FileStorage Main>\nPath $instance/var/x.fs\n</FILESTORAGE>\n",
			nil, func(t *testing.T, c *ServerConfig, home string) {
				if c.ZEO.Address != (Address{Host: "localhost", Port: 8800}) || !c.ZEO.ReadOnly || c.Storages[0].Name != "main" {
					t.Errorf("%+v %+v", c.ZEO, c.Storages)
				}
			}},
		{"mappingstorage only", zeo + "<mappingstorage/>\n", nil, func(t *testing.T, c *ServerConfig, home string) {
			s := c.Storages[0]
			if s.Name != "1" || !s.Unnamed || s.Kind != KindMappingStorage || s.Mapping.Name != "Mapping Storage" {
				t.Errorf("%+v %+v", s, s.Mapping)
			}
		}},
		{"unix address", "<zeo>\naddress /srv/zeo/zeo.sock\n</zeo>\n" + fs, nil, func(t *testing.T, c *ServerConfig, home string) {
			if !c.ZEO.Address.IsUnix() || c.ZEO.Address.Unix != "/srv/zeo/zeo.sock" || c.ZEO.Address.Network() != "unix" {
				t.Errorf("%+v", c.ZEO.Address)
			}
		}},
		{"dollar escape", "%define A hello$$world\n" + zeo + "<mappingstorage>\nname $A\n</mappingstorage>\n", nil,
			func(t *testing.T, c *ServerConfig, home string) {
				if c.Storages[0].Mapping.Name != "hello$world" {
					t.Errorf("%q", c.Storages[0].Mapping.Name)
				}
			}},
		{"environment", "<zeo>\naddress 127.0.0.1:$(MYPORT)\n</zeo>\n" + fs, nil, func(t *testing.T, c *ServerConfig, home string) {
			if c.ZEO.Address != (Address{Host: "127.0.0.1", Port: 27555}) {
				t.Errorf("%+v", c.ZEO.Address)
			}
		}},
		{"same redefinition", "%define Port 27444\n%define PORT 27444\n<zeo>\naddress ${port}\n</zeo>\n" + fs, nil,
			func(t *testing.T, c *ServerConfig, home string) {
				if c.ZEO.Address.Port != 27444 {
					t.Errorf("%+v", c.ZEO.Address)
				}
			}},
		{"empty define", "%define EMPTY\n<zeo>\naddress 88${EMPTY}00\n</zeo>\n" + fs, nil, func(t *testing.T, c *ServerConfig, home string) {
			if c.ZEO.Address.Port != 8800 {
				t.Errorf("%+v", c.ZEO.Address)
			}
		}},
		{"tabs", "<zeo>\n\taddress\t\t8800   \n</zeo>\n" + fs, nil, func(t *testing.T, c *ServerConfig, home string) {
			if c.ZEO.Address.Port != 8800 {
				t.Errorf("%+v", c.ZEO.Address)
			}
		}},
		{"python white space", "<zeo>\n\x1caddress\v8800\u00a0\n</zeo>\n%define\u2003X\u2003 y z\n<mappingstorage>\nname $X\n</mappingstorage>\n", nil,
			func(t *testing.T, c *ServerConfig, home string) {
				if c.ZEO.Address.Port != 8800 || c.Storages[0].Mapping.Name != "y z" {
					t.Errorf("%+v %q", c.ZEO.Address, c.Storages[0].Mapping.Name)
				}
			}},
		{"include", zeo + "%include inc.conf\n", map[string]string{"etc/inc.conf": "<filestorage inc>\npath $INSTANCE/var/i.fs\n</filestorage>\n%define LATE yes\n"},
			func(t *testing.T, c *ServerConfig, home string) {
				if c.Storages[0].Name != "inc" || c.Defines["late"] != "yes" {
					t.Errorf("%+v", c.Storages)
				}
			}},
		{"zeo options", "<zeo>\naddress 8800\nmsgpack on\nclient-conflict-resolution yes\ninvalidation-age 3.5\ntransaction-timeout 30\n</zeo>\n" + fs, nil,
			func(t *testing.T, c *ServerConfig, home string) {
				z := c.ZEO
				if z.Msgpack == nil || !*z.Msgpack || !z.ClientConflictResolution || z.InvalidationAge == nil ||
					*z.InvalidationAge != 3.5 || z.TransactionTimeout != 30*time.Second {
					t.Errorf("%+v", z)
				}
			}},
		{"quota", zeo + "<filestorage 1>\npath a.fs\nquota 10MB\n</filestorage>\n<filestorage 2>\npath b.fs\nquota 1GB\n</filestorage>\n<filestorage 3>\npath c.fs\nquota 2 kb\n</filestorage>\n", nil,
			func(t *testing.T, c *ServerConfig, home string) {
				got := []int64{c.Storages[0].FileStorage.Quota, c.Storages[1].FileStorage.Quota, c.Storages[2].FileStorage.Quota}
				if !reflect.DeepEqual(got, []int64{10485760, 1073741824, 2048}) {
					t.Errorf("%v", got)
				}
			}},
		{"empty blob-dir", zeo + "<filestorage>\npath x.fs\nblob-dir\n</filestorage>\n", nil, func(t *testing.T, c *ServerConfig, home string) {
			if c.Storages[0].FileStorage.BlobDir != "" {
				t.Errorf("%+v", c.Storages[0].FileStorage)
			}
		}},
		{"blobstorage", zeo + "<blobstorage 1>\nblob-dir $INSTANCE/var/blobs\n<filestorage>\npath $INSTANCE/var/Data.fs\n</filestorage>\n</blobstorage>\n", nil,
			func(t *testing.T, c *ServerConfig, home string) {
				s := c.Storages[0]
				if s.Kind != KindBlobStorage || s.Name != "1" || s.Blob.BlobDir != home+"/var/blobs" || s.Blob.Base.Kind != KindFileStorage {
					t.Errorf("%+v %+v", s, s.Blob)
				}
			}},
		{"demostorage", zeo + "<demostorage 2>\n<mappingstorage base/>\n<mappingstorage changes/>\n</demostorage>\n", nil,
			func(t *testing.T, c *ServerConfig, home string) {
				s := c.Storages[0]
				if s.Kind != KindDemoStorage || s.Name != "2" || s.Demo.Base.Name != "base" || s.Demo.Changes.Name != "changes" {
					t.Errorf("%+v %+v", s, s.Demo)
				}
			}},
		{"zeoclient", zeo + "<zeoclient 3>\nserver localhost:9000\n</zeoclient>\n", nil, func(t *testing.T, c *ServerConfig, home string) {
			cl := c.Storages[0].Client
			if c.Storages[0].Name != "3" || cl.Storage != "1" || cl.CacheSize != 20971520 || !cl.Wait ||
				cl.Servers[0] != (Address{Host: "localhost", Port: 9000}) {
				t.Errorf("%+v", cl)
			}
		}},
		{"ssl", "<zeo>\naddress 8800\n<ssl>\ncertificate $INSTANCE/etc/server.pem\nkey $INSTANCE/etc/server_key.pem\nauthenticate $INSTANCE/etc/clients.pem\n</ssl>\n</zeo>\n" + fs, nil,
			func(t *testing.T, c *ServerConfig, home string) {
				s := c.ZEO.SSL
				if s == nil || s.Certificate != home+"/etc/server.pem" || s.Key != home+"/etc/server_key.pem" || s.Authenticate != home+"/etc/clients.pem" {
					t.Errorf("%+v", s)
				}
			}},
		{"runner", zeo + fs + "<runner>\nprogram $INSTANCE/bin/runzeo\nexit-codes 0, 2, 3\nstop-timeout 5\n</runner>\n", nil,
			func(t *testing.T, c *ServerConfig, home string) {
				r := c.Runner
				if r == nil || !reflect.DeepEqual(r.Program, []string{home + "/bin/runzeo"}) || !reflect.DeepEqual(r.ExitCodes, []int{0, 2, 3}) ||
					r.StopTimeout != 5*time.Second || r.StartTimeout != 300*time.Second || !r.Daemon {
					t.Errorf("%+v", r)
				}
			}},
		{"eventlog", zeo + fs + "<eventlog>\nlevel warning\n<logfile>\npath $INSTANCE/log/a.log\n</logfile>\n<logfile>\npath STDERR\nformat %(message)s\\n\n</logfile>\n</eventlog>\n", nil,
			func(t *testing.T, c *ServerConfig, home string) {
				l := c.EventLog
				if l.Level != 30 || len(l.Handlers) != 2 || l.Handlers[0].Path != home+"/log/a.log" ||
					l.Handlers[0].Format != DefaultLogFormat || l.Handlers[1].Path != "STDERR" || l.Handlers[1].Format != "%(message)s\n" {
					t.Errorf("%+v", l)
				}
			}},
		{"odd accepted values", "<zeo>\naddress 8800\ninvalidation-queue-size -5\nread-only YES\n</zeo>\n" + fs, nil,
			func(t *testing.T, c *ServerConfig, home string) {
				if c.ZEO.InvalidationQueueSize != -5 || !c.ZEO.ReadOnly {
					t.Errorf("%+v", c.ZEO)
				}
			}},
		{"port out of range is a host", "<zeo>\naddress 70000\n</zeo>\n" + fs, nil, func(t *testing.T, c *ServerConfig, home string) {
			if c.ZEO.Address != (Address{Host: "70000", Port: -1}) {
				t.Errorf("%+v", c.ZEO.Address)
			}
		}},
		{"import ZEO clientstorage", "%import ZEO\n" + zeo + "<clientstorage 1>\nserver 9000\nwait-timeout 5\n</clientstorage>\n", nil,
			func(t *testing.T, c *ServerConfig, home string) {
				cl := c.Storages[0].Client
				if c.Storages[0].Kind != KindClientStorage || cl.WaitTimeout != 5*time.Second || cl.Servers[0] != (Address{Host: "127.0.0.1", Port: 9000}) {
					t.Errorf("%+v", cl)
				}
			}},
		{"comment and blank lines, empty section name clash free", "# c\n\n" + zeo + "<mappingstorage/>\n<filestorage x>\npath a.fs\n</filestorage>\n", nil,
			func(t *testing.T, c *ServerConfig, home string) {
				if len(c.Storages) != 2 || c.Storages[0].Name != "1" || c.Storages[1].Name != "x" {
					t.Errorf("%+v", c.Storages)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			path := writeConf(t, home, tc.text)
			for name, text := range tc.files {
				if err := os.WriteFile(filepath.Join(home, name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Chdir(home)
			cfg, err := LoadServerConfig(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg, home)
		})
	}
}

func TestServerConfigReject(t *testing.T) {
	const zeo = "<zeo>\naddress 8800\n</zeo>\n"
	const fs = "<filestorage 1>\npath x.fs\n</filestorage>\n"
	cases := []struct {
		name, text string
		line       int
		msg        string // ZConfig's message
		key        string
	}{
		{"comment after value", "<zeo>\naddress 8800 # comment\n</zeo>\n" + fs, 2, "not a valid host name: '8800 # comment'", "address"},
		{"undefined name", zeo + "<filestorage>\npath $NOPE/x\n</filestorage>\n", 5, "no replacement for 'NOPE'", ""},
		{"unset environment variable", zeo + "<filestorage>\npath $(ZODBCTL_SURELY_UNSET)/x\n</filestorage>\n", 5, "no replacement for 'ZODBCTL_SURELY_UNSET'", ""},
		{"name reused across types", zeo + fs + "<mappingstorage 1>\n</mappingstorage>\n", 8, "section names must not be re-used within the same container:'1'", ""},
		{"duplicate key", "<zeo>\naddress 8800\naddress 8801\n</zeo>\n" + fs, 3, "'address' does not support multiple values", ""},
		{"monitor-address", "<zeo>\naddress 8800\nmonitor-address 8801\n</zeo>\n" + fs, 3, "'monitor-address' is not a known key name", ""},
		{"authentication-protocol", "<zeo>\naddress 8800\nauthentication-protocol digest\n</zeo>\n" + fs, 3, "'authentication-protocol' is not a known key name", ""},
		{"no storage", zeo, 0, "not enough values for section type 'zodb.storage'; 0 found, 1 required", ""},
		{"no zeo", fs, 0, "no values for section type 'zeo'; 1 required", ""},
		{"logger at top", zeo + fs + "<logger>\n</logger>\n", 7, "no matching section defined for type='logger', name='None'", ""},
		{"boolean 1", "<zeo>\naddress 8800\nread-only 1\n</zeo>\n" + fs, 3, "not a valid boolean value: '1'", "read-only"},
		{"float timeout", "<zeo>\naddress 8800\ntransaction-timeout 2.5\n</zeo>\n" + fs, 3, "invalid literal for int() with base 10: '2.5'", "transaction-timeout"},
		{"empty integer", "<zeo>\naddress 8800\ninvalidation-queue-size\n</zeo>\n" + fs, 3, "invalid literal for int() with base 10: ''", "invalidation-queue-size"},
		{"key=value", "<zeo>\naddress=8800\n</zeo>\n" + fs, 2, "value did not match regular expression: 'address=8800'", ""},
		{"quoted name", zeo + "<mappingstorage \"a b\">\n</mappingstorage>\n", 4, "malformed section header", ""},
		{"space after <", "< zeo>\naddress 8800\n</zeo>\n" + fs, 1, "malformed section header", ""},
		{"unbalanced", "<zeo>\naddress 8800\n</filestorage>\n" + fs, 3, "unbalanced section end", ""},
		{"upper-case directive", "%DEFINE X 1\n" + zeo + fs, 1, "unknown directive: 'DEFINE'", ""},
		{"redefine", "%define port 1\n%define port 2\n" + zeo + fs, 2, "cannot redefine 'port'", ""},
		{"redefine with substitution", "%define a x\n%define B $a\n%define B $a\n" + zeo + fs, 3, "cannot redefine 'b'", ""},
		{"no line continuation", "<zeo>\naddress \\\n8800\n</zeo>\n" + fs, 3, "value did not match regular expression: '8800'", ""},
		{"two unnamed storages", zeo + "<mappingstorage/>\n<mappingstorage/>\n", 0, "No more than one storage may be unnamed.", ""},
		{"unnamed and 1", zeo + "<mappingstorage/>\n<mappingstorage 1/>\n", 0, "Can't have an unnamed storage and a storage named 1.", ""},
		{"no address", "<zeo>\n</zeo>\n" + fs, 1, "no server address specified; use -a or -C", ""},
		{"missing path", zeo + "<filestorage>\n</filestorage>\n", 5, "no values for 'path'; 1 required", ""},
		{"unclosed", zeo + "<filestorage>\npath x\n", 5, "unclosed sections not allowed", ""},
		{"missing include", zeo + fs + "%include nothere.conf\n", 7, "error opening file HOME/etc/nothere.conf: [Errno 2] No such file or directory: 'HOME/etc/nothere.conf'", ""},
		{"include a directory", zeo + fs + "%include ../var\n", 1, "error reading file HOME/var: [Errno 21] Is a directory: 'HOME/var'", ""},
		{"abstract section", zeo + "<zodb.storage>\n</zodb.storage>\n", 4, "concrete sections cannot match abstract section types; found abstract type 'zodb.storage'", ""},
		{"unknown import", "%import relstorage\n" + zeo + fs, 1, "%import 'relstorage': zodbctl cannot load Python schema components; only ZEO, ZODB and ZConfig.components.logger are known", ""},
		{"clientstorage without import", zeo + "<clientstorage>\nserver 1\n</clientstorage>\n", 4, "unknown type name: 'clientstorage'", ""},
		{"lone dollar", zeo + "<mappingstorage>\nname a$\n</mappingstorage>\n", 5, "illegal lone '$' at end of source", ""},
		{"unterminated brace", zeo + "<mappingstorage>\nname ${a\n</mappingstorage>\n", 5, "'${a' not followed by '}'", ""},
		{"bad port", "<zeo>\naddress localhost:99999\n</zeo>\n" + fs, 2, "99999 is above upper bound (65535)", "address"},
		{"bad byte size", zeo + "<filestorage>\npath x\nquota 1TB\n</filestorage>\n", 6, "invalid literal for int() with base 10: '1tb'", "quota"},
		{"berkeley storage", zeo + "<fullstorage>\nenvdir x\n</fullstorage>\n", 4, "storage type 'fullstorage' is not supported (BerkeleyDB storages no longer exist)", ""},
		{"demo two bases", zeo + "<demostorage>\n<mappingstorage a/>\n<mappingstorage b/>\n</demostorage>\n", 6, "Too many base storages defined!", ""},
		{"two zeo sections", zeo + zeo + fs, 4, "too many instances of 'zeo' section", ""},
		{"unexpected end", "</zeo>\n" + zeo + fs, 1, "unexpected section end", ""},
		{"missing directive argument", "%define\n" + zeo + fs, 1, "missing argument to %define directive", ""},
		{"bad define name", "%define 9x 1\n" + zeo + fs, 1, "not a substitution legal name: '9x'", ""},
		{"rotation on STDERR", zeo + fs + "<eventlog>\n<logfile>\npath STDERR\nmax-size 1MB\nold-files 2\n</logfile>\n</eventlog>\n", 12, "encoding, delay and rotation cannot be used with STDERR", ""},
		{"rotation without old-files", zeo + fs + "<eventlog>\n<logfile>\npath zeo.log\nwhen midnight\n</logfile>\n</eventlog>\n", 11, "rotation ('max-size' or 'when') needs 'old-files' > 0", ""},
		{"bad log level", zeo + fs + "<eventlog>\nlevel loud\n</eventlog>\n", 8, "logging level must be a name or an integer between 0 and 50: 'loud'", "level"},
		{"ssl without authenticate", "<zeo>\naddress 8800\n<ssl>\ncertificate x.pem\n</ssl>\n</zeo>\n" + fs, 5, "no values for 'authenticate'; 1 required", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			path := writeConf(t, home, tc.text)
			t.Chdir(home)
			_, err := LoadServerConfig(path, Options{})
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a ConfigError", err)
			}
			if want := strings.ReplaceAll(tc.msg, "HOME", home); ce.Msg != want || ce.Line != tc.line || ce.Key != tc.key {
				t.Errorf("got %q line %d key %q\nwant %q line %d key %q", ce.Msg, ce.Line, ce.Key, want, tc.line, tc.key)
			}
			if strings.HasSuffix(tc.name, "-address") && !strings.HasSuffix(err.Error(), "; ZEO 5 has no monitor port (server status: zodbctl connect … status)") {
				t.Errorf("no hint: %s", err)
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "file://") {
				t.Errorf("not a one-line message naming the file: %q", err)
			}
		})
	}
}

func TestCircularInclude(t *testing.T) {
	home := t.TempDir()
	path := writeConf(t, home, "<zeo>\naddress 1\n</zeo>\n%include a.conf\n")
	os.WriteFile(filepath.Join(home, "etc", "a.conf"), []byte("# a\n%include zeo.conf\n"), 0o644)
	_, err := LoadServerConfig(path, Options{})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Msg != "circular %include of file://"+path || ce.Line != 2 || ce.File != filepath.Join(home, "etc", "a.conf") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseAddress(t *testing.T) {
	cases := []struct {
		in         string
		bind, conn Address
	}{
		{"8800", Address{Host: "", Port: 8800}, Address{Host: "127.0.0.1", Port: 8800}},
		{":8800", Address{Host: "", Port: 8800}, Address{Host: "127.0.0.1", Port: 8800}},
		{"LocalHost:8800", Address{Host: "localhost", Port: 8800}, Address{Host: "localhost", Port: 8800}},
		{"[::1]:8800", Address{Host: "::1", Port: 8800}, Address{Host: "::1", Port: 8800}},
		{"::1", Address{Host: "::1", Port: -1}, Address{Host: "::1", Port: -1}},
		{"host", Address{Host: "host", Port: -1}, Address{Host: "host", Port: -1}},
		{"127.0.0.1:", Address{Host: "127.0.0.1", Port: -1}, Address{Host: "127.0.0.1", Port: -1}},
		{"70000", Address{Host: "70000", Port: -1}, Address{Host: "70000", Port: -1}},
		{"var/zeo.sock", Address{Unix: "var/zeo.sock", Port: -1}, Address{Unix: "var/zeo.sock", Port: -1}},
	}
	for _, c := range cases {
		b, err1 := ParseAddress(c.in, true)
		k, err2 := ParseAddress(c.in, false)
		if err1 != nil || err2 != nil || b != c.bind || k != c.conn {
			t.Errorf("%q: %+v %+v (%v %v), want %+v %+v", c.in, b, k, err1, err2, c.bind, c.conn)
		}
	}
	if a, _ := ParseAddress("[::1]:8800", true); !a.IPv6() || a.String() != "[::1]:8800" || a.DialAddr() != "[::1]:8800" {
		t.Errorf("ipv6: %+v %s", a, a)
	}
	if a, _ := ParseAddress("8800", true); a.String() != "*:8800" || a.DialAddr() != "127.0.0.1:8800" || a.ListenAddr() != ":8800" {
		t.Errorf("all interfaces: %s %s %s", a, a.DialAddr(), a.ListenAddr())
	}
}

func TestClientConfig(t *testing.T) {
	home := t.TempDir()
	path := writeConf(t, home, `%define INSTANCE `+home+`
instancehome $INSTANCE
%import Products.Whatever
<environment>
  X 1
</environment>
<zodb_db main>
  mount-point /
  cache-size 10000
  <zeoclient>
    server localhost:8100
    server /tmp/zeo.sock
    storage 2
    name zeostorage
    var $INSTANCE/var
    blob-dir $INSTANCE/var/blobcache
  </zeoclient>
</zodb_db>
<zodb_db temporary>
  <temporarystorage>
    name temp
  </temporarystorage>
</zodb_db>
<zodb other>
  cache-size 100
  <mappingstorage/>
</zodb>
`)
	cfg, err := LoadClientConfig(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Databases) != 3 {
		t.Fatalf("%+v", cfg.Databases)
	}
	main := cfg.Databases[0]
	cl := main.Storage.Client
	if main.Name != "main" || main.Storage.Kind != KindZEOClient || cl.Storage != "2" || cl.Var != home+"/var" ||
		len(cl.Servers) != 2 || cl.Servers[1].Unix != "/tmp/zeo.sock" || cl.Name != "zeostorage" {
		t.Errorf("main = %+v %+v", main, cl)
	}
	if tmp := cfg.Databases[1]; tmp.Storage.Kind != "temporarystorage" {
		t.Errorf("temporary = %+v", tmp)
	}
	if o := cfg.Databases[2]; o.CacheSize != 100 || o.PoolSize != 7 || o.DatabaseName != "other" || o.Storage.Kind != KindMappingStorage {
		t.Errorf("other = %+v", o)
	}
	// Inside <zodb> the ZODB schema is strict.
	path = writeConf(t, home, "<zodb>\ncache-size lots\n<mappingstorage/>\n</zodb>\n")
	if _, err := LoadClientConfig(path, Options{}); err == nil || !strings.Contains(err.Error(), "invalid literal for int() with base 10: 'lots' (key 'cache-size', line 2") {
		t.Errorf("err = %v", err)
	}
}

func TestOverrides(t *testing.T) {
	home := t.TempDir()
	path := writeConf(t, home, seedConf)
	cfg, err := LoadServerConfig(path, Options{Overrides: []Override{{"zeo/address", "127.0.0.1:8200"}, {"2/read-only", "true"}}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ZEO.Address != (Address{Host: "127.0.0.1", Port: 8200}) || cfg.Storages[0].FileStorage.ReadOnly || !cfg.Storages[1].FileStorage.ReadOnly {
		t.Errorf("%+v %+v", cfg.ZEO, cfg.Storages)
	}
	_, err = LoadServerConfig(path, Options{Overrides: []Override{{"zeo/read-only", "maybe"}}})
	if err == nil || err.Error() != "not a valid boolean value: 'maybe' (key 'read-only', in -X)" {
		t.Errorf("err = %v", err)
	}
	// The first section of that type only, as ZConfig's option bag.
	cfg, err = LoadServerConfig(path, Options{Overrides: []Override{{"filestorage/read-only", "true"}}})
	if err != nil || !cfg.Storages[0].FileStorage.ReadOnly || cfg.Storages[1].FileStorage.ReadOnly {
		t.Errorf("%v %+v", err, cfg)
	}
	for _, c := range []struct {
		o    []Override
		want string
	}{
		{[]Override{{"nothere/x", "1"}}, "not all command line options were consumed (in -X)"},
		{[]Override{{"zeo//x", "1"}}, "'//' is not allowed in an option path (in -X)"},
		{[]Override{{"zeo/address", "1"}, {"zeo/address", "2"}}, "'address' does not support multiple values (in -X)"},
	} {
		if _, err = LoadServerConfig(path, Options{Overrides: c.o}); err == nil || err.Error() != c.want {
			t.Errorf("%v: %v, want %s", c.o, err, c.want)
		}
	}
}

func TestFlagConfig(t *testing.T) {
	dir := t.TempDir()
	cfg, err := FlagConfig("127.0.0.1:8100", []string{dir + "/a.fs", "b.fs"})
	if err != nil || cfg.ZEO.Address != (Address{Host: "127.0.0.1", Port: 8100}) || len(cfg.Storages) != 2 ||
		cfg.Storages[1].Name != "2" || cfg.Storages[1].FileStorage.Path != "b.fs" || !cfg.Storages[0].FileStorage.PackGC {
		t.Errorf("%v %+v", err, cfg)
	}
	for _, c := range []struct {
		addr  string
		files []string
		want  string
	}{
		{"", []string{"a.fs"}, "no server address specified; use -a or -C"},
		{"8100", nil, "no storages specified; use -f or -C"},
		{"8100", []string{dir + "/no/a.fs"}, "The directory named as part of the path " + dir + "/no/a.fs does not exist. (key 'path')"},
		{"a b", []string{"a.fs"}, "not a valid host name: 'a b' (key 'address')"},
	} {
		if _, err := FlagConfig(c.addr, c.files); err == nil || err.Error() != c.want {
			t.Errorf("%q %v: %v, want %s", c.addr, c.files, err, c.want)
		}
	}
}

func BenchmarkLoadServerConfig(b *testing.B) {
	home := b.TempDir()
	os.MkdirAll(filepath.Join(home, "etc"), 0o755)
	os.MkdirAll(filepath.Join(home, "var"), 0o755)
	os.MkdirAll(filepath.Join(home, "log"), 0o755)
	path := filepath.Join(home, "etc", "zeo.conf")
	os.WriteFile(path, []byte(ZEOConf(InstanceOptions{Home: home, Address: "8800",
		Storages: []StorageSpec{{"1", "Data1.fs"}, {"2", "Data2.fs"}}})), 0o644)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LoadServerConfig(path, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// The reference mkzeoinstance's zeo.conf (placeholders filled with paths
// that exist) loads, with the same result as the one zodbctl writes.
func TestReferenceZeoConfLoads(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "testdata", "mkzeoinstance", "blobs-default", "files", "etc", "zeo.conf"))
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	zdaemon := t.TempDir()
	os.MkdirAll(filepath.Join(zdaemon, "zdaemon"), 0o755)
	os.WriteFile(filepath.Join(zdaemon, "zdaemon", "zdrun.py"), nil, 0o644)
	text := strings.NewReplacer("$INSTANCE_PATH", home, "$PYTHON", "/bin/sh", "$ZDAEMON_HOME", zdaemon).Replace(string(data))
	ref, err := LoadServerConfig(writeConf(t, home, text), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ours, err := LoadServerConfig(writeConf(t, home, ZEOConf(InstanceOptions{Home: home, Address: "127.0.0.1:8800", BlobDir: DefaultBlobDir})), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ref.Runner.Python != "/bin/sh" || ref.Runner.Zdrun != zdaemon+"/zdaemon/zdrun.py" {
		t.Errorf("runner %+v", ref.Runner)
	}
	ref.Runner.Python, ref.Runner.Zdrun = "", ""
	if !reflect.DeepEqual(ref.ZEO, ours.ZEO) || !reflect.DeepEqual(ref.Storages, ours.Storages) ||
		!reflect.DeepEqual(ref.EventLog, ours.EventLog) || !reflect.DeepEqual(ref.Runner, ours.Runner) {
		t.Errorf("reference %+v\nours %+v", ref, ours)
	}
	if ours.Storages[0].FileStorage.BlobDir != home+"/var/blobs" || ours.Runner.SocketName != home+"/var/zeo.zdsock" {
		t.Errorf("%+v %+v", ours.Storages[0].FileStorage, ours.Runner)
	}
}
