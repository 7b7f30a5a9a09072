package client

import (
	"testing"

	"github.com/zodbctl/zodbctl/fsformat/pickle"
	"github.com/zodbctl/zodbctl/zeowire"
)

// FuzzReplyParsers feeds arbitrary decoded values to the reply parsers:
// they must reject what they do not understand, never panic.
func FuzzReplyParsers(f *testing.F) {
	for _, v := range []any{
		zeowire.Tuple{zeowire.Tid(1).Bytes(), " ", []byte("u"), []byte("d"), zeowire.Dict{{Key: "k", Value: "v"}}},
		zeowire.Dict{{Key: "name", Value: "x"}, {Key: "interfaces", Value: zeowire.Tuple{zeowire.Tuple{"a", "b"}, "junk"}}},
		zeowire.Tuple{zeowire.Tid(1).Bytes(), nil, int64(3)},
	} {
		b, err := pickle.MarshalFast(v, 3)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := zeowire.DecodePickleValue(b)
		if err != nil {
			return
		}
		parseTxn(v)
		if d, ok := v.(zeowire.Dict); ok {
			parseInfo(d)
		}
	})
}
