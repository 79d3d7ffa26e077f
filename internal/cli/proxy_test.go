package cli

import "testing"

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"1048576", 1 << 20, false},
		{"64MiB", 64 << 20, false},
		{"64Mi", 64 << 20, false},
		{"64M", 64 << 20, false},
		{"512KiB", 512 << 10, false},
		{"1GiB", 1 << 30, false},
		{"64XB", 0, true},
		{"MiB", 0, true},
		{"-5MiB", 0, true},
		{"0", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseBytes(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("parseBytes(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}
