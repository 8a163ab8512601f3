package auth

import (
	"net/netip"
	"testing"
)

func TestFetcherAllowed(t *testing.T) {
	for _, tc := range []struct {
		addr                  string
		allowed, withLoopback bool
	}{
		{"93.184.215.14", true, true},
		{"2606:2800:21f:cb07:6820:80da:af6b:8b2c", true, true},
		{"127.0.0.1", false, true},
		{"127.1.2.3", false, true},
		{"::1", false, true},
		{"::ffff:127.0.0.1", false, true},
		{"169.254.169.254", false, false},
		{"::ffff:169.254.169.254", false, false},
		{"64:ff9b::a9fe:a9fe", false, false}, // NAT64 169.254.169.254
		{"64:ff9b::5db8:d70e", true, true},   // NAT64 93.184.215.14
		{"2002:a9fe:a9fe::1", false, false},  // 6to4 169.254.169.254
		{"fd00:ec2::254", false, false},
		{"fe80::1", false, false},
		{"10.0.0.1", false, false},
		{"172.16.0.1", false, false},
		{"172.31.255.255", false, false},
		{"172.32.0.1", true, true},
		{"192.168.0.1", false, false},
		{"::ffff:10.0.0.1", false, false},
		{"100.64.0.1", false, false},
		{"100.127.255.255", false, false},
		{"100.128.0.1", true, true},
		{"0.0.0.0", false, false},
		{"0.1.2.3", false, false},
		{"::", false, false},
		{"224.0.0.1", false, false},
		{"ff02::1", false, false},
		{"255.255.255.255", false, false},
		{"240.0.0.1", false, false},
		{"198.18.0.1", false, false},
		{"192.0.0.170", false, false},
		{"::a9fe:a9fe", false, false},                          // IPv4-compatible 169.254.169.254
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", false, false}, // Teredo
		{"fec0::1", false, false},
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := (&JWKSFetcher{}).allowed(a); got != tc.allowed {
			t.Errorf("allowed(%s) = %v, want %v", tc.addr, got, tc.allowed)
		}
		if got := (&JWKSFetcher{AllowLoopback: true}).allowed(a); got != tc.withLoopback {
			t.Errorf("allowed(%s) with AllowLoopback = %v, want %v", tc.addr, got, tc.withLoopback)
		}
	}
}
