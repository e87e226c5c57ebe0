package transport

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// prefixSet is a list of address ranges. Lookups scan it in order, which is
// fast enough for the tens of ranges an operator writes by hand.
type prefixSet []netip.Prefix

// parsePrefixes parses CIDR ranges and single addresses (a single address
// becomes a /32 or /128). field names the Config field in errors.
func parsePrefixes(field string, values []string) (prefixSet, error) {
	set := make(prefixSet, 0, len(values))
	for i, v := range values {
		v = strings.TrimSpace(v)
		if strings.Contains(v, "/") {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return nil, fmt.Errorf("transport: Config.%s[%d] %q is not a CIDR range: %w", field, i, v, err)
			}
			set = append(set, normalizePrefix(p))
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("transport: Config.%s[%d] %q is neither a CIDR range nor an IP address: %w", field, i, v, err)
		}
		if a.Zone() != "" {
			return nil, fmt.Errorf("transport: Config.%s[%d] %q has an IPv6 zone: remove it", field, i, v)
		}
		a = a.Unmap()
		set = append(set, netip.PrefixFrom(a, a.BitLen()))
	}
	return set, nil
}

// normalizePrefix masks the host bits, and turns an IPv4-mapped IPv6 range
// such as ::ffff:10.0.0.0/104 into its IPv4 form, because client addresses
// are unmapped before the lookup.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// contains reports whether a is in one of the ranges. The zero Addr is in
// none.
func (s prefixSet) contains(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range s {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// addrOf returns the IP address of a TCP address, or the zero Addr for any
// other kind of address.
func addrOf(a net.Addr) netip.Addr {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return netip.Addr{}
	}
	return ip.Unmap()
}

// accessList applies Config.Allow and Config.Deny.
type accessList struct {
	allow prefixSet
	deny  prefixSet
}

// check returns the reason to reject a client address, or reasonNone. Deny
// wins over Allow, and an empty Allow admits every address.
func (l accessList) check(a netip.Addr) Reason {
	if l.deny.contains(a) {
		return ReasonDeny
	}
	if len(l.allow) > 0 && !l.allow.contains(a) {
		return ReasonAllow
	}
	return reasonNone
}
