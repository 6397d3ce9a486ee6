// Package vigilsign signs events in Vigil's canonical form (docs/events.md, "Signing").
//
// Vigil parses each message and serializes it again to get the bytes a signature
// covers: keys sorted by code point at every level, no whitespace, UTF-8 with only
// '"', '\' and control characters escaped, and numbers as its parser reads them.
// encoding/json cannot produce that form: it escapes '<', '>' and '&' as \u003c...
// (json.Marshal always, an Encoder unless SetEscapeHTML(false)), escapes U+2028 and
// U+2029 always, and writes struct fields in declaration order. This package writes
// the canonical form itself, and writes the message with the same code, so the values
// sent are exactly the values signed.
package vigilsign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

var (
	minInt64  = big.NewInt(math.MinInt64)
	maxUint64 = new(big.Int).SetUint64(math.MaxUint64)
)

// Canonical returns the canonical form of an event given as any value json.Marshal
// accepts (a struct with json tags, a map[string]any, ...), without its "signature"
// member. Strings that are not valid UTF-8 are coerced to U+FFFD by json.Marshal, as
// in the message Sign writes.
func Canonical(event any) ([]byte, error) {
	document, err := fromValue(event)
	if err != nil {
		return nil, err
	}
	return canonicalOf(document), nil
}

// CanonicalJSON returns the canonical form of a JSON message, read as Vigil reads it.
func CanonicalJSON(message []byte) ([]byte, error) {
	document, err := parse(message)
	if err != nil {
		return nil, err
	}
	return canonicalOf(document), nil
}

func canonicalOf(document map[string]any) []byte {
	unsigned := make(map[string]any, len(document))
	for key, value := range document {
		if key != "signature" {
			unsigned[key] = value
		}
	}
	var out bytes.Buffer
	write(&out, unsigned)
	return out.Bytes()
}

func fromValue(event any) (map[string]any, error) {
	raw, err := json.Marshal(event)
	if err != nil {
		return nil, err
	}
	return parse(raw)
}

// parse reads a JSON object keeping every number's literal (json.Number), and refuses
// what Vigil refuses: invalid UTF-8, lone surrogate escapes, trailing data.
func parse(message []byte) (map[string]any, error) {
	if !utf8.Valid(message) {
		return nil, errors.New("vigilsign: message is not valid UTF-8")
	}
	if err := checkSurrogateEscapes(message); err != nil {
		return nil, err
	}
	decoder := json.NewDecoder(bytes.NewReader(message))
	decoder.UseNumber()
	var value any
	if err := decoder.Decode(&value); err != nil {
		return nil, fmt.Errorf("vigilsign: invalid JSON: %w", err)
	}
	if _, err := decoder.Token(); err != io.EOF {
		return nil, errors.New("vigilsign: data after the JSON object")
	}
	document, ok := value.(map[string]any)
	if !ok {
		return nil, errors.New("vigilsign: message is not a JSON object")
	}
	if err := checkNumbers(document); err != nil {
		return nil, err
	}
	return document, nil
}

// checkSurrogateEscapes finds \uD800-\uDFFF escapes that are not a high surrogate
// followed by a low one: encoding/json would turn them into U+FFFD silently, Vigil
// rejects the message.
func checkSurrogateEscapes(message []byte) error {
	inString := false
	pendingHigh := false
	for i := 0; i < len(message); i++ {
		c := message[i]
		if !inString {
			inString = c == '"'
			continue
		}
		if c == '"' {
			if pendingHigh {
				return errors.New("vigilsign: lone surrogate escape in a string")
			}
			inString = false
			continue
		}
		if c != '\\' {
			if pendingHigh {
				return errors.New("vigilsign: lone surrogate escape in a string")
			}
			continue
		}
		i++
		if i >= len(message) || message[i] != 'u' || i+4 >= len(message) {
			if pendingHigh {
				return errors.New("vigilsign: lone surrogate escape in a string")
			}
			continue
		}
		unit, err := strconv.ParseUint(string(message[i+1:i+5]), 16, 16)
		i += 4
		if err != nil {
			continue // encoding/json reports the bad escape
		}
		switch {
		case unit >= 0xD800 && unit <= 0xDBFF:
			if pendingHigh {
				return errors.New("vigilsign: lone surrogate escape in a string")
			}
			pendingHigh = true
		case unit >= 0xDC00 && unit <= 0xDFFF:
			if !pendingHigh {
				return errors.New("vigilsign: lone surrogate escape in a string")
			}
			pendingHigh = false
		default:
			if pendingHigh {
				return errors.New("vigilsign: lone surrogate escape in a string")
			}
		}
	}
	return nil
}

func checkNumbers(value any) error {
	switch v := value.(type) {
	case map[string]any:
		for _, item := range v {
			if err := checkNumbers(item); err != nil {
				return err
			}
		}
	case []any:
		for _, item := range v {
			if err := checkNumbers(item); err != nil {
				return err
			}
		}
	case json.Number:
		if _, err := number(v); err != nil {
			return err
		}
	}
	return nil
}

// number is a literal as Vigil re-serializes it: an integer literal within
// -2^63 .. 2^64-1 stays an integer, anything else is a 64-bit float.
func number(literal json.Number) (string, error) {
	text := string(literal)
	if !strings.ContainsAny(text, ".eE") {
		integer, ok := new(big.Int).SetString(text, 10)
		if ok && integer.Cmp(minInt64) >= 0 && integer.Cmp(maxUint64) <= 0 {
			return integer.String(), nil
		}
	}
	value, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(value, 0) {
		return "", fmt.Errorf("vigilsign: number %s is not a finite 64-bit float", text)
	}
	return FormatFloat(value), nil
}

// FormatFloat writes a float as Vigil does: the shortest digits that read back as the
// same value, plain while the decimal point falls within the first 16 digit positions
// and at most four zeros follow it ("0.00001", "1000000000000000.0"), in exponent
// notation otherwise ("1e+16", "1e-6", "1.5e-7"); always with a fraction or exponent.
func FormatFloat(value float64) string {
	if value == 0 {
		if math.Signbit(value) {
			return "-0.0"
		}
		return "0.0"
	}
	sign := ""
	if value < 0 {
		sign = "-"
		value = -value
	}
	// "d.ddddde±XX": the shortest round-trip digits and the exponent of the first one.
	scientific := strconv.FormatFloat(value, 'e', -1, 64)
	mantissa, exponentText, _ := strings.Cut(scientific, "e")
	exponent, _ := strconv.Atoi(exponentText)
	digits := strings.TrimRight(strings.Replace(mantissa, ".", "", 1), "0")
	count, point := len(digits), exponent+1
	switch {
	case count <= point && point <= 16:
		return sign + digits + strings.Repeat("0", point-count) + ".0"
	case 0 < point && point <= 16:
		return sign + digits[:point] + "." + digits[point:]
	case -5 < point && point <= 0:
		return sign + "0." + strings.Repeat("0", -point) + digits
	}
	written := digits[:1]
	if count > 1 {
		written += "." + digits[1:]
	}
	if exponent > 0 {
		return sign + written + "e+" + strconv.Itoa(exponent)
	}
	return sign + written + "e-" + strconv.Itoa(-exponent)
}

func write(out *bytes.Buffer, value any) {
	switch v := value.(type) {
	case nil:
		out.WriteString("null")
	case bool:
		out.WriteString(strconv.FormatBool(v))
	case string:
		writeString(out, v)
	case json.Number:
		text, _ := number(v) // checked when parsed
		out.WriteString(text)
	case []any:
		out.WriteByte('[')
		for i, item := range v {
			if i > 0 {
				out.WriteByte(',')
			}
			write(out, item)
		}
		out.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for key := range v {
			keys = append(keys, key)
		}
		// Byte order of valid UTF-8 is code point order, as Vigil sorts.
		sort.Strings(keys)
		out.WriteByte('{')
		for i, key := range keys {
			if i > 0 {
				out.WriteByte(',')
			}
			writeString(out, key)
			out.WriteByte(':')
			write(out, v[key])
		}
		out.WriteByte('}')
	}
}

const hexDigits = "0123456789abcdef"

// writeString escapes only '"', '\' and U+0000..U+001F; '<', '>', '&', U+2028 and all
// other characters stay as their UTF-8 bytes.
func writeString(out *bytes.Buffer, text string) {
	out.WriteByte('"')
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '"':
			out.WriteString(`\"`)
		case c == '\\':
			out.WriteString(`\\`)
		case c == '\b':
			out.WriteString(`\b`)
		case c == '\f':
			out.WriteString(`\f`)
		case c == '\n':
			out.WriteString(`\n`)
		case c == '\r':
			out.WriteString(`\r`)
		case c == '\t':
			out.WriteString(`\t`)
		case c < 0x20:
			out.WriteString(`\u00`)
			out.WriteByte(hexDigits[c>>4])
			out.WriteByte(hexDigits[c&0xF])
		default:
			out.WriteByte(c)
		}
	}
	out.WriteByte('"')
}
