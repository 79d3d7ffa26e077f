package analysis

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Output formats, as istioctl analyze names them.
const (
	FormatLog  = "log"
	FormatJSON = "json"
	FormatYAML = "yaml"
)

// Formats lists the output formats Write accepts.
var Formats = []string{FormatLog, FormatJSON, FormatYAML}

// record is the machine-readable form of a message, with istioctl's keys.
type record struct {
	Code             string `json:"code" yaml:"code"`
	Level            string `json:"level" yaml:"level"`
	Origin           string `json:"origin,omitempty" yaml:"origin,omitempty"`
	Reference        string `json:"reference,omitempty" yaml:"reference,omitempty"`
	Message          string `json:"message" yaml:"message"`
	DocumentationURL string `json:"documentationUrl" yaml:"documentationUrl"`
}

func records(ms []Message) []record {
	out := make([]record, 0, len(ms))
	for _, m := range ms {
		out = append(out, record{
			Code: m.Type.Code, Level: m.Type.Level.String(), Origin: m.Origin(), Reference: m.Reference(),
			Message: m.Text(), DocumentationURL: m.Type.DocumentationURL(),
		})
	}
	return out
}

// Write prints ms in format: "log" one message per line, "json" an array
// indented with tabs, "yaml" a list.
func Write(w io.Writer, ms []Message, format string) error {
	switch format {
	case FormatLog:
		var b strings.Builder
		for _, m := range ms {
			b.WriteString(m.String() + "\n")
		}
		_, err := io.WriteString(w, b.String())
		return err
	case FormatJSON:
		data, err := json.MarshalIndent(records(ms), "", "\t")
		if err != nil {
			return err
		}
		_, err = w.Write(append(data, '\n'))
		return err
	case FormatYAML:
		data, err := yaml.Marshal(records(ms))
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	return fmt.Errorf("unknown output format %q (valid: %s)", format, strings.Join(Formats, ", "))
}
