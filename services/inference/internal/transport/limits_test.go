package transport

import "testing"

func TestParseModelLimits(t *testing.T) {
	tests := []struct {
		spec    string
		wantErr bool
		limits  map[string]int
	}{
		{spec: "", limits: map[string]int{"any": 0}},
		{spec: "mistralai/Mistral-7B-Instruct-v0.3=4, default=8",
			limits: map[string]int{"mistralai/Mistral-7B-Instruct-v0.3": 4, "other": 8}},
		{spec: "org/model:provider=2", limits: map[string]int{"org/model:provider": 2, "org/model": 0}},
		{spec: "a=0", wantErr: true},
		{spec: "a=x", wantErr: true},
		{spec: "novalue", wantErr: true},
	}
	for _, tt := range tests {
		l, err := ParseModelLimits(tt.spec)
		if (err != nil) != tt.wantErr {
			t.Fatalf("ParseModelLimits(%q) error = %v, want error %v", tt.spec, err, tt.wantErr)
		}
		for model, want := range tt.limits {
			if got := l.Limit(model); got != want {
				t.Errorf("%q: Limit(%s) = %d, want %d", tt.spec, model, got, want)
			}
		}
	}
}

func TestModelLimitsTryAcquire(t *testing.T) {
	l, err := ParseModelLimits("a=2")
	if err != nil {
		t.Fatal(err)
	}
	r1, ok1 := l.TryAcquire("a")
	_, ok2 := l.TryAcquire("a")
	_, ok3 := l.TryAcquire("a")
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("acquire a three times = %v %v %v, want true true false", ok1, ok2, ok3)
	}
	if _, ok := l.TryAcquire("b"); !ok {
		t.Errorf("an unlimited model was refused")
	}
	r1()
	r1() // releasing twice frees one slot only
	if _, ok := l.TryAcquire("a"); !ok {
		t.Errorf("a freed slot was refused")
	}
	if _, ok := l.TryAcquire("a"); ok {
		t.Errorf("a double release freed two slots")
	}
	var nilLimits *ModelLimits
	if _, ok := nilLimits.TryAcquire("a"); !ok {
		t.Errorf("nil limits refused")
	}
}
