package h2raw

import "strconv"

// What of HPACK (RFC 7541) the client needs: its integers and strings,
// and the :status of an answer.

// integer reads an integer of an n-bit prefix (§5.1); nil if b is cut
// short or the integer is too large.
func integer(b []byte, n uint) (int, []byte) {
	if len(b) == 0 {
		return 0, nil
	}
	most := 1<<n - 1
	v := int(b[0]) & most
	b = b[1:]
	if v < most {
		return v, b
	}
	for shift := 0; len(b) > 0 && shift < 28; shift += 7 {
		c := b[0]
		b = b[1:]
		v += int(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, b
		}
	}
	return 0, nil
}

// appendInteger appends v with an n-bit prefix, the prefix's other bits
// from first.
func appendInteger(b []byte, first byte, n uint, v int) []byte {
	most := 1<<n - 1
	if v < most {
		return append(b, first|byte(v))
	}
	b = append(b, first|byte(most))
	for v -= most; v >= 0x80; v >>= 7 {
		b = append(b, byte(v)|0x80)
	}
	return append(b, byte(v))
}

// appendString appends s as a string literal, not Huffman-coded (§5.2).
func appendString(b []byte, s string) []byte {
	return append(appendInteger(b, 0, 7, len(s)), s...)
}

// str reads a string literal (§5.2): its bytes as sent (Huffman-coded if
// b's first bit is set) and the rest; nil if b is cut short.
func str(b []byte) (lit []byte, rest []byte) {
	if len(b) == 0 {
		return nil, nil
	}
	n, rest := integer(b, 7)
	if rest == nil || n > len(rest) {
		return nil, nil
	}
	return rest[:n], rest[n:]
}

// staticStatus is HPACK's static table's statuses, by their index.
var staticStatus = map[int]int{8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}

// Status is the :status of an answer's header block: its first field,
// after any dynamic table size update, either indexed from the static
// table or a literal (any of the three kinds) whose name is one of the
// static table's :status entries (8-14), its value plain or
// Huffman-coded; 0 if it is neither.
func Status(b []byte) int {
	for len(b) > 0 && b[0]&0xe0 == 0x20 {
		_, b = integer(b, 5)
	}
	if len(b) == 0 {
		return 0
	}
	var idx int
	switch first := b[0]; {
	case first&0x80 != 0:
		idx, _ = integer(b, 7)
		return staticStatus[idx]
	case first&0xc0 == 0x40:
		idx, b = integer(b, 6)
	default:
		idx, b = integer(b, 4)
	}
	if _, ok := staticStatus[idx]; !ok || b == nil {
		return 0
	}
	huffman := b[0]&0x80 != 0
	lit, rest := str(b)
	if rest == nil {
		return 0
	}
	v := string(lit)
	if huffman {
		v = huffmanDigits(lit)
	}
	n, err := strconv.Atoi(v)
	if err != nil || len(v) != 3 {
		return 0
	}
	return n
}

// huffmanDigits decodes a Huffman-coded string of digits (Appendix B: '0'
// to '2' are the 5-bit codes 0-2, '3' to '9' the 6-bit codes 0x19-0x1f;
// the last byte padded with up to 7 1s); "" at any other code.
func huffmanDigits(b []byte) string {
	total := len(b) * 8
	read := func(i, n int) uint {
		v := uint(0)
		for k := i; k < i+n; k++ {
			v = v<<1 | uint(b[k/8]>>(7-k%8))&1
		}
		return v
	}
	var out []byte
	i := 0
	for i < total {
		rest := total - i
		switch {
		case rest < 8 && read(i, rest) == 1<<rest-1: // the padding
			return string(out)
		case rest >= 5 && read(i, 5) < 3:
			out = append(out, '0'+byte(read(i, 5)))
			i += 5
		case rest >= 6 && read(i, 6) >= 0x19 && read(i, 6) <= 0x1f:
			out = append(out, '3'+byte(read(i, 6)-0x19))
			i += 6
		default:
			return ""
		}
	}
	return string(out)
}
