package provider

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var chunkSamples = []string{
	// OpenAI / HF router / TGI shapes.
	`{"object":"chat.completion.chunk","id":"","created":1732636800,"model":"mistralai/Mistral-7B-Instruct-v0.3","system_fingerprint":"3.3.4-native","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}`,
	`{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" wörld 🦜"},"finish_reason":null}]}`,
	`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":50,"total_tokens":62}}`,
	`{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":50,"total_tokens":62}}`,
	`{"choices":[{"delta":{"content":null},"finish_reason":"length"}]}`,
	`{"choices":[{"message":{"role":"assistant","content":"whole"},"finish_reason":"stop"}]}`,
	`{"choices":[{"delta":{"content":"a\nb \"q\" \u00e9 \ud83e\udd9c \\"}}]}`,
	`{"choices":[{"delta":{"content":"x"}},{"delta":{"content":"y"}}],"time_info":{"queue_time":0.0001,"total_time":0.01},"x":[1,{"a":[true,false,null]},"s"]}`,
	`  { "choices" : [ { "delta" : { "content" : "spaced" } } ] , "model" : null }  `,
	`{"choices":null,"usage":null,"model":"m","object":null}`,
	`{}`,
	// Everything the scanner leaves to encoding/json.
	`{"error":{"message":"boom","http_status_code":500},"error_type":"overloaded"}`,
	`{"object":"error","message":"Model is overloaded","code":503}`,
	`{"Choices":[{"Delta":{"Content":"case"}}]}`,
	`{"choices":[{"delta":{"CONTENT":"case"}}]}`,
	`{"usage":{"prompt_tokens":1.5}}`,
	`{"usage":{"prompt_tokens":null,"completion_tokens":3}}`,
	`{"usage":{"prompt_tokens":007}}`,
	`{"ch\u006fices":[]}`,
	`{"choices":[{"delta":{"content":"cut`,
	`{"choices":[{"delta":{"content":"x"}}]} trailing`,
	`{"choices":[{"delta":{"content":"x"}}],}`,
	`{"x":tru}`,
	`{"x":[1,2}`,
	`{"x":"bad \x01 control"}`,
	"{\"choices\":[{\"delta\":{\"content\":\"bad utf8 \xff\"}}]}",
	`[1,2]`,
	`"str"`,
	`{"choices":{"delta":{}}}`,
	`{"model":5}`,
}

func stdDecode(b []byte) (chunk, error) {
	var ch chunk
	err := json.Unmarshal(b, &ch)
	return ch, err
}

func checkSameAsStd(t *testing.T, raw string) {
	t.Helper()
	want, wantErr := stdDecode([]byte(raw))
	var got chunk
	got.Choices = make([]choice, 0, 4) // reused room must not leak into the result
	gotErr := decodeChunk([]byte(raw), &got)
	if (wantErr != nil) != (gotErr != nil) {
		t.Fatalf("%s: error %v, encoding/json says %v", raw, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("%s: (-encoding/json +decodeChunk)\n%s", raw, diff)
	}
}

func TestDecodeChunkMatchesEncodingJSON(t *testing.T) {
	for _, raw := range chunkSamples {
		checkSameAsStd(t, raw)
	}
}

func TestDecodeChunkUsesTheFastPath(t *testing.T) {
	for _, raw := range chunkSamples[:11] {
		var ch chunk
		sc := chunkScanner{b: []byte(raw)}
		if !sc.chunk(&ch) {
			t.Errorf("usual chunk left to encoding/json: %s", raw)
		}
	}
}

func FuzzDecodeChunk(f *testing.F) {
	for _, raw := range chunkSamples {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		checkSameAsStd(t, raw)
	})
}

func BenchmarkDecodeChunk(b *testing.B) {
	raw := []byte(chunkSamples[0])
	b.Run("scanner", func(b *testing.B) {
		var ch chunk
		for b.Loop() {
			if err := decodeChunk(raw, &ch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var ch chunk
			if err := json.Unmarshal(raw, &ch); err != nil {
				b.Fatal(err)
			}
		}
	})
}
