package mkinstance

import (
	"bufio"
	"strings"
	"testing"
)

// FuzzParse: any text gives a tree or a ConfigError, never a panic; the
// schema check and the typed builders survive whatever the parser accepts.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{seedConf,
		"%define A $$x${a}\n<zeo>\naddress [::1]:8800\n<ssl>\ncertificate c\nauthenticate DYNAMIC\n</ssl>\n</zeo>\n<mappingstorage/>\n",
		"<demostorage>\n<mappingstorage changes/>\n<blobstorage>\nblob-dir b\n<filestorage>\npath p\n</filestorage>\n</blobstorage>\n</demostorage>\n",
		"<eventlog>\nlevel 5\n<logfile>\npath STDOUT\n</logfile>\n</eventlog>\n<runner>\nprogram x\numask 0777\nexit-codes 1,x\n</runner>\n",
		"<zodb_db main>\n<zeoclient>\nserver 1\n</zeoclient>\n</zodb_db>\n", "< x>\n", "$", "%define\n", "<a/>\n</a>\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if strings.Contains(text, "%include") {
			return // would read arbitrary files
		}
		for _, lenient := range []bool{false, true} {
			p := &parser{defines: map[string]string{"instance": "/nonexistent"}, fixed: map[string]bool{},
				soft: map[string]bool{}, lenient: lenient}
			top := &Section{File: "fuzz.conf"}
			if err := p.parse(top, "fuzz.conf", bufio.NewReader(strings.NewReader(text))); err != nil {
				if _, ok := err.(*ConfigError); !ok {
					t.Fatalf("error type %T: %v", err, err)
				}
				continue
			}
			m := &matcher{schema: newSchema(), imports: map[string]bool{"ZEO": true}, skipUnknown: lenient}
			all := []childInfo{{typ: "zeo", max: 1}, {typ: absStorage, max: -1}, {typ: "eventlog", max: 1},
				{typ: "runner", max: 1}, {typ: "zodb", max: -1}, {typ: "zodb_db", max: -1}}
			n, err := m.match(top, &sectionInfo{}, all, nil, lenient)
			if err != nil {
				continue
			}
			d := &decoder{}
			for _, c := range n.children {
				switch c.info.typ {
				case "zeo":
					d.zeo(c)
				case "eventlog":
					d.logConfig(c)
				case "runner":
					d.runner(c)
				case "zodb", "zodb_db":
					for _, s := range c.childrenOf(absStorage) {
						d.storage(s)
					}
				default:
					d.storage(c)
				}
			}
		}
	})
}
