package events

import "testing"

func TestRedactURL(t *testing.T) {
	tests := map[string]string{
		"nats://127.0.0.1:4222":                   "nats://127.0.0.1:4222",
		"nats://gateway:s3cret@nats:4222":         "nats://gateway:REDACTED@nats:4222",
		"tls://tok3n@nats:4222":                   "tls://REDACTED@nats:4222",
		"nats://a:p1@h1:4222,nats://a:p2@h2:4222": "nats://a:REDACTED@h1:4222,nats://a:REDACTED@h2:4222",
		"nats://user:pa%40ss@h:1":                 "nats://user:REDACTED@h:1",
	}
	for in, want := range tests {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNATSTLSOptions(t *testing.T) {
	if opts, err := (NATSTLS{}).Options(); err != nil || opts != nil {
		t.Errorf("no settings: %v %v", opts, err)
	}
	if _, err := (NATSTLS{Cert: "c.pem"}).Options(); err == nil {
		t.Error("a certificate without a key was accepted")
	}
	if _, err := (NATSTLS{CA: "/does/not/exist.pem"}).Options(); err == nil {
		t.Error("a missing CA file was accepted")
	}
}
