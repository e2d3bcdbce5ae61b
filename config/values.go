package config

import (
	"errors"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The decoders below check a value's shape and type only; whether the value
// makes sense (a port in range, a path that exists) is validate's business.

// stringValue accepts any scalar as its text, so `name: 2024` is "2024".
func stringValue(p *string) decodeFunc {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.ScalarNode {
			return wrongType(n, "a string")
		}
		*p = n.Value
		return nil
	}
}

// pathValue is a string that must not be empty: "" would silently mean the
// folder of smoothserve.yaml.
func pathValue(p *string) decodeFunc {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.ScalarNode || n.Value == "" {
			return wrongType(n, "a path")
		}
		*p = n.Value
		return nil
	}
}

// intValue accepts a YAML integer only: "8085" in quotes or 3.5 is a mistake.
func intValue(p *int) decodeFunc {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			return wrongType(n, "an integer")
		}
		var v int
		if err := n.Decode(&v); err != nil {
			return &valueError{line: n.Line, msg: "integer " + n.Value + " is out of range"}
		}
		*p = v
		return nil
	}
}

// boolValue accepts true or false; yes/no/on/off are YAML 1.1 and read as
// strings by YAML 1.2, so they are refused rather than guessed.
func boolValue(p *bool) decodeFunc {
	return func(n *yaml.Node) error {
		var v bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&v) != nil {
			return wrongType(n, "true or false")
		}
		*p = v
		return nil
	}
}

// durationValue accepts a number of seconds (3, 0.5), as the seed writes
// delay_running_time, or a Go duration ("1.5s", "300ms").
func durationValue(p *time.Duration) decodeFunc {
	const want = `a number of seconds or a duration like "1.5s"`
	return func(n *yaml.Node) error {
		if n.Kind != yaml.ScalarNode {
			return wrongType(n, want)
		}
		switch n.ShortTag() {
		case "!!int", "!!float":
			var secs float64
			if err := n.Decode(&secs); err != nil {
				return wrongType(n, want)
			}
			ns := secs * float64(time.Second)
			if math.IsNaN(ns) || math.Abs(ns) >= math.MaxInt64 {
				return &valueError{line: n.Line, msg: "duration " + n.Value + " is out of range"}
			}
			*p = time.Duration(math.Round(ns))
		case "!!str":
			d, err := time.ParseDuration(n.Value)
			if err != nil {
				return wrongType(n, want)
			}
			*p = d
		default:
			return wrongType(n, want)
		}
		return nil
	}
}

// sizeUnits are the units of a byte size, lower-cased. Each is a power of
// 1024, whichever spelling: nginx reads 10m as 10×2^20 bytes, and an
// operator moving a limit over from nginx means the same thing by 10MB.
var sizeUnits = map[string]int64{
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
}

// byteSize accepts a YAML integer of bytes (1048576) or a whole number
// followed at once by a unit of sizeUnits, in any case ("512k", "10MB",
// "1GiB"). A string without a unit ("1024") is refused, as a quoted
// integer is elsewhere.
func byteSize(p *int64) decodeFunc {
	const want = `a number of bytes or a size like "10m"`
	return func(n *yaml.Node) error {
		if n.Kind != yaml.ScalarNode {
			return wrongType(n, want)
		}
		outOfRange := &valueError{line: n.Line, msg: "size " + n.Value + " is out of range"}
		switch n.ShortTag() {
		case "!!int":
			var v int64
			if err := n.Decode(&v); err != nil {
				return outOfRange
			}
			*p = v
		case "!!str":
			end := strings.LastIndexAny(n.Value, "0123456789") + 1
			unit, ok := sizeUnits[strings.ToLower(n.Value[end:])]
			if !ok {
				return wrongType(n, want)
			}
			v, err := strconv.ParseInt(n.Value[:end], 10, 64)
			switch {
			case errors.Is(err, strconv.ErrRange):
				return outOfRange
			case err != nil:
				return wrongType(n, want)
			case v > math.MaxInt64/unit || v < math.MinInt64/unit:
				return outOfRange
			}
			*p = v * unit
		default:
			return wrongType(n, want)
		}
		return nil
	}
}

// stringList accepts a list of scalars; an empty list is a value (no
// items), unlike an absent key, which gets the default.
func stringList(p *[]string) decodeFunc {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.SequenceNode {
			return wrongType(n, "a list of strings")
		}
		list := make([]string, 0, len(n.Content))
		for _, item := range n.Content {
			item = resolve(item)
			if item.Kind != yaml.ScalarNode || isNull(item) {
				return wrongType(item, "a string")
			}
			list = append(list, item.Value)
		}
		*p = list
		return nil
	}
}

// serverNames accepts the seed's comma-separated string
// ("service_domain , service2_domain") or a list; names are trimmed and
// lower-cased, as Host headers are compared without case.
func serverNames(p *[]string) decodeFunc {
	return func(n *yaml.Node) error {
		var raw []string
		switch n.Kind {
		case yaml.ScalarNode:
			if strings.TrimSpace(n.Value) != "" {
				raw = strings.Split(n.Value, ",")
			}
		case yaml.SequenceNode:
			if err := stringList(&raw)(n); err != nil {
				return err
			}
		default:
			return wrongType(n, "host names separated by commas, or a list")
		}
		names := make([]string, 0, len(raw))
		for _, name := range raw {
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				return &valueError{line: n.Line, msg: "empty host name in " + describe(n)}
			}
			names = append(names, name)
		}
		*p = names
		return nil
	}
}

// envMap accepts a mapping of names to scalars; a scalar's text is the
// value (PORT: 80 is "80"), and a null is "".
func envMap(p *map[string]string) decodeFunc {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.MappingNode {
			return wrongType(n, "a mapping of names to values")
		}
		env := make(map[string]string, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			name, value := resolve(n.Content[i]), resolve(n.Content[i+1])
			if name.Kind != yaml.ScalarNode || name.Value == "" || strings.ContainsAny(name.Value, "=\x00") {
				return wrongType(name, "a variable name")
			}
			if _, dup := env[name.Value]; dup {
				return &valueError{line: name.Line, msg: "variable " + name.Value + " is set twice"}
			}
			switch {
			case isNull(value):
				env[name.Value] = ""
			case value.Kind == yaml.ScalarNode:
				env[name.Value] = value.Value
			default:
				return wrongType(value, "text for "+name.Value)
			}
		}
		*p = env
		return nil
	}
}

// prefixList accepts CIDRs and bare IPs; a bare IP is a single-address
// prefix, and a CIDR with host bits set is masked (10.1.2.3/8 is 10.0.0.0/8).
func prefixList(p *[]netip.Prefix) decodeFunc {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.SequenceNode {
			return wrongType(n, "a list of CIDRs or IP addresses")
		}
		list := make([]netip.Prefix, 0, len(n.Content))
		var bad []error // every bad item, not the first alone
		for _, item := range n.Content {
			item = resolve(item)
			if item.Kind != yaml.ScalarNode {
				bad = append(bad, wrongType(item, "a CIDR or an IP address"))
			} else if prefix, err := netip.ParsePrefix(item.Value); err == nil {
				list = append(list, prefix.Masked())
			} else if addr, err := netip.ParseAddr(item.Value); err == nil && addr.Zone() == "" {
				list = append(list, netip.PrefixFrom(addr, addr.BitLen()))
			} else {
				bad = append(bad, wrongType(item, "a CIDR or an IP address"))
			}
		}
		if len(bad) > 0 {
			return errors.Join(bad...)
		}
		*p = list
		return nil
	}
}

// pathList is a list of paths, none of them empty: "" would silently mean
// the folder it resolves against.
func pathList(p *[]string) decodeFunc {
	return func(n *yaml.Node) error {
		var list []string
		if err := stringList(&list)(n); err != nil {
			return err
		}
		for i, item := range list {
			if item == "" {
				return wrongType(resolve(n.Content[i]), "a path")
			}
		}
		*p = list
		return nil
	}
}
