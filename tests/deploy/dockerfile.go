package deploy

import "strings"

type dockerLine struct {
	n     int
	instr string
	args  string
}

// dockerfileLines splits a Dockerfile into instructions, joining continuation lines.
func dockerfileLines(src string) []dockerLine {
	var out []dockerLine
	var cur strings.Builder
	start := 0
	for i, raw := range strings.Split(src, "\n") {
		line := strings.TrimSpace(raw)
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		full := cur.String()
		cur.Reset()
		instr, args, _ := strings.Cut(full, " ")
		out = append(out, dockerLine{n: start, instr: strings.ToUpper(instr), args: strings.TrimSpace(args)})
	}
	return out
}

func hasTag(from string) bool {
	image := strings.Fields(from)[0]
	if strings.Contains(image, "${") {
		return true
	}
	last := image[strings.LastIndex(image, "/")+1:]
	return strings.Contains(last, ":") || strings.Contains(image, "@sha256:")
}

func containsWord(s, w string) bool { return strings.Contains(s, w) }
