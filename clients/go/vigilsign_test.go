package vigilsign

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
)

type vectors struct {
	SecretHex string `json:"secret_hex"`
	KeyID     string `json:"key_id"`
	Valid     []struct {
		Name       string `json:"name"`
		Message    string `json:"message"`
		Canonical  string `json:"canonical"`
		HmacSHA256 string `json:"hmac_sha256"`
	} `json:"valid"`
	Invalid []struct {
		Name    string `json:"name"`
		Message string `json:"message"`
	} `json:"invalid"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	raw, err := os.ReadFile("../testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVectorsCanonicalFormAndSignature(t *testing.T) {
	v := loadVectors(t)
	secret, _ := hex.DecodeString(v.SecretHex)
	for _, vector := range v.Valid {
		t.Run(vector.Name, func(t *testing.T) {
			canonical, err := CanonicalJSON([]byte(vector.Message))
			if err != nil {
				t.Fatal(err)
			}
			if string(canonical) != vector.Canonical {
				t.Fatalf("canonical form\n got: %s\nwant: %s", canonical, vector.Canonical)
			}
			message, err := SignHMACJSON([]byte(vector.Message), v.KeyID, secret)
			if err != nil {
				t.Fatal(err)
			}
			var signed struct {
				Signature struct{ Value string } `json:"signature"`
			}
			if err := json.Unmarshal(message, &signed); err != nil {
				t.Fatal(err)
			}
			if signed.Signature.Value != vector.HmacSHA256 {
				t.Fatalf("signature %s, want %s", signed.Signature.Value, vector.HmacSHA256)
			}
			again, err := CanonicalJSON(message)
			if err != nil || string(again) != vector.Canonical {
				t.Fatalf("the signed message reads back as\n%s\nnot\n%s", again, vector.Canonical)
			}
		})
	}
}

func TestVectorsVigilRejectsAreRefused(t *testing.T) {
	for _, vector := range loadVectors(t).Invalid {
		if _, err := CanonicalJSON([]byte(vector.Message)); err == nil {
			t.Errorf("%s: accepted", vector.Name)
		}
	}
}

type client struct {
	UserAgent string `json:"user_agent"`
	IP        string `json:"ip"`
}

type accessEvent struct {
	Type     string            `json:"type"`
	EventID  string            `json:"event_id"`
	Version  int               `json:"schema_version"`
	Features map[string]any    `json:"features"`
	Client   client            `json:"client"`
	Segment  map[string]string `json:"segment"`
	Records  int64             `json:"records"`
	Bytes    uint64            `json:"bytes"`
}

func TestGoValuesKeepHTMLCharactersAndSortStructFields(t *testing.T) {
	event := accessEvent{
		Type: "access", EventID: "e<1>&2", Version: 1,
		Features: map[string]any{"big": 1e21, "tenth": 0.1, "small": 0.000001, "neg": -0.5, "max": int64(math.MaxInt64), "min": int64(math.MinInt64), "ratio": 1e16},
		Client:   client{UserAgent: "a<b>&c \u2028 Zürich 😀", IP: "10.0.0.1"},
		Segment:  map[string]string{"\U0001F600": "astral", "\uFFFF": "bmp"},
		Records:  -42, Bytes: math.MaxUint64,
	}
	got, err := Canonical(event)
	if err != nil {
		t.Fatal(err)
	}
	// A whole float64 below 1e21 is written by encoding/json as an integer; it is signed
	// and sent as that integer, which Vigil accepts wherever a number is expected.
	want := `{"bytes":18446744073709551615,"client":{"ip":"10.0.0.1","user_agent":"a<b>&c ` + "\u2028" +
		` Zürich 😀"},"event_id":"e<1>&2","features":{"big":1e+21,"max":9223372036854775807,` +
		`"min":-9223372036854775808,"neg":-0.5,"ratio":10000000000000000,"small":1e-6,"tenth":0.1},"records":-42,` +
		`"schema_version":1,"segment":{"` + "\uFFFF" + `":"bmp","😀":"astral"},"type":"access"}`
	if string(got) != want {
		t.Fatalf("canonical form\n got: %s\nwant: %s", got, want)
	}
	marshalled, _ := json.Marshal(event)
	if strings.Contains(string(marshalled), "<") || !strings.Contains(string(marshalled), `\u003c`) {
		t.Fatalf("encoding/json no longer escapes HTML characters; the pitfall in docs/events.md is stale")
	}
}

func TestSignedMessageCarriesItsSignatureOverTheCanonicalForm(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	event := map[string]any{"type": "feedback", "model_id": "m<1>", "label": 1.5, "signature": "ignored"}
	message, err := SignHMAC(event, "k", secret)
	if err != nil {
		t.Fatal(err)
	}
	canonical, _ := Canonical(event)
	mac := hmac.New(sha256.New, secret)
	mac.Write(canonical)
	want := `{"label":1.5,"model_id":"m<1>","signature":{"alg":"hmac-sha256","key_id":"k","value":"` +
		hex.EncodeToString(mac.Sum(nil)) + `"},"type":"feedback"}`
	if string(message) != want {
		t.Fatalf("message\n got: %s\nwant: %s", message, want)
	}
	if _, err := SignHMAC(event, "k", []byte("short")); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
}

func TestEd25519SignatureVerifies(t *testing.T) {
	public, private, _ := ed25519.GenerateKey(nil)
	event := map[string]any{"type": "training", "model_id": "m", "metrics": map[string]any{"auc": 0.9412}}
	message, err := SignEd25519(event, "ed", private)
	if err != nil {
		t.Fatal(err)
	}
	var signed struct {
		Signature struct{ Alg, Value string } `json:"signature"`
	}
	_ = json.Unmarshal(message, &signed)
	signature, _ := hex.DecodeString(signed.Signature.Value)
	canonical, _ := CanonicalJSON(message)
	if signed.Signature.Alg != "ed25519" || !ed25519.Verify(public, canonical, signature) {
		t.Fatal("the Ed25519 signature does not verify")
	}
}

func TestNumbersVigilCannotRepresentAreRefused(t *testing.T) {
	for _, message := range []string{`{"x":1e400}`, `{"x":-1e999}`, `{"x":1} {}`, `[1]`, "{\"x\":\"\xff\"}"} {
		if _, err := CanonicalJSON([]byte(message)); err == nil {
			t.Errorf("%q accepted", message)
		}
	}
	if _, err := Canonical(map[string]any{"x": math.NaN()}); err == nil {
		t.Error("NaN accepted")
	}
}

func TestRouteFollowsTheContract(t *testing.T) {
	cases := map[string][2]string{
		`{"type":"access","principal":{"id":"bob"}}`: {"ai.access", "bob"},
		`{"type":"feedback","model_id":"fraud-v3"}`:  {"ai.inference", "fraud-v3"},
		`{"type":"training","model_id":"m<&>"}`:      {"ai.training", "m<&>"},
	}
	for message, want := range cases {
		topic, key, err := Route([]byte(message))
		if err != nil || topic != want[0] || key != want[1] {
			t.Errorf("%s: %s %s %v", message, topic, key, err)
		}
	}
	if _, _, err := Route([]byte(`{"type":"access","principal":42}`)); err == nil {
		t.Error("an access event without principal.id was routed")
	}
}
