package codegen

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// release is one FHIR version that the generator reads from spec/<dir>/.
type release struct {
	dir     string // spec/<dir>, and the Version value
	ident   string // the Go constant: DSTU2, STU3, R4, R5
	pkg     string // upstream package name
	version string // FHIR version
}

var releases = []release{
	{"dstu2", "DSTU2", "hl7.fhir.r2.core", "1.0.2"},
	{"stu3", "STU3", "hl7.fhir.r3.core", "3.0.2"},
	{"r4", "R4", "hl7.fhir.r4.core", "4.0.1"},
	{"r5", "R5", "hl7.fhir.r5.core", "5.0.0"},
}

// The JSON shapes read from the trimmed files (see ../../extract).

type bundleJSON[T any] struct {
	Entry []struct {
		Resource T `json:"resource"`
	} `json:"entry"`
}

type structureDefinitionJSON struct {
	ID             string `json:"id"`
	URL            string `json:"url"`
	Name           string `json:"name"`
	Type           string `json:"type"`
	Kind           string `json:"kind"`
	Abstract       bool   `json:"abstract"`
	BaseDefinition string `json:"baseDefinition"`
	Base           string `json:"base"` // DSTU2
	Snapshot       struct {
		Element []elementJSON `json:"element"`
	} `json:"snapshot"`
}

type elementJSON struct {
	Path             string     `json:"path"`
	Min              int        `json:"min"`
	Max              string     `json:"max"`
	Type             []typeJSON `json:"type"`
	ContentReference string     `json:"contentReference"`
	NameReference    string     `json:"nameReference"` // DSTU2
	IsModifier       bool       `json:"isModifier"`
	IsSummary        bool       `json:"isSummary"`
}

type typeJSON struct {
	Extension []struct {
		URL      string `json:"url"`
		ValueURL string `json:"valueUrl"`
		ValueURI string `json:"valueUri"`
	} `json:"extension"`
	Code          string          `json:"code"`
	Profile       json.RawMessage `json:"profile"`       // DSTU2: []string; STU3: string
	TargetProfile json.RawMessage `json:"targetProfile"` // STU3: string; R4, R5: []string
}

type searchParameterJSON struct {
	ID         string          `json:"id"`
	URL        string          `json:"url"`
	Code       string          `json:"code"`
	Base       json.RawMessage `json:"base"` // DSTU2: string; later: []string
	Type       string          `json:"type"`
	Expression string          `json:"expression"`
	XPath      string          `json:"xpath"`
	Target     []string        `json:"target"`
}

type compartmentDefinitionJSON struct {
	ResourceType string `json:"resourceType"`
	Code         string `json:"code"`
	Resource     []struct {
		Code  string   `json:"code"`
		Param []string `json:"param"`
	} `json:"resource"`
}

type packageJSON struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// strings1 reads a JSON string or array of strings.
func strings1(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	err := json.Unmarshal(raw, &many)
	return many, err
}

func readGzipJSON(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// compartmentEntry is one resource type of the Patient compartment and the
// names of the search parameters that link it ("{def}" left out).
type compartmentEntry struct {
	typ    string
	params []string
}

// readCompartment reads the Patient compartment: the CompartmentDefinition
// (STU3 and later) or the DSTU2 build's compartments.xml.
func readCompartment(dir string) ([]compartmentEntry, error) {
	if _, err := os.Stat(filepath.Join(dir, "compartments.xml")); err == nil {
		return readCompartmentsXML(filepath.Join(dir, "compartments.xml"))
	}
	var cd compartmentDefinitionJSON
	if err := readJSON(filepath.Join(dir, "compartmentdefinition-patient.json"), &cd); err != nil {
		return nil, err
	}
	if cd.ResourceType != "CompartmentDefinition" || cd.Code != "Patient" {
		return nil, fmt.Errorf("%s: not the Patient CompartmentDefinition", dir)
	}
	var out []compartmentEntry
	for _, r := range cd.Resource {
		e := compartmentEntry{typ: r.Code}
		for _, p := range r.Param {
			if p != "{def}" {
				e.params = append(e.params, p)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// The DSTU2 compartments.xml is an Excel 2003 XML workbook; its worksheet
// "resources" has a row per resource type and a column per compartment,
// each cell listing the linking parameters as "a | b".
type workbookXML struct {
	Worksheets []struct {
		Name string `xml:"urn:schemas-microsoft-com:office:spreadsheet Name,attr"`
		Rows []struct {
			Cells []struct {
				Index int    `xml:"urn:schemas-microsoft-com:office:spreadsheet Index,attr"`
				Data  string `xml:"urn:schemas-microsoft-com:office:spreadsheet Data"`
			} `xml:"urn:schemas-microsoft-com:office:spreadsheet Cell"`
		} `xml:"urn:schemas-microsoft-com:office:spreadsheet Table>Row"`
	} `xml:"urn:schemas-microsoft-com:office:spreadsheet Worksheet"`
}

func readCompartmentsXML(path string) ([]compartmentEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var wb workbookXML
	if err := xml.Unmarshal(b, &wb); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, ws := range wb.Worksheets {
		if ws.Name != "resources" {
			continue
		}
		var out []compartmentEntry
		patientCol := -1
		for r, row := range ws.Rows {
			// Cells may skip columns (ss:Index is 1-based).
			cols := map[int]string{}
			col := 0
			for _, c := range row.Cells {
				if c.Index > 0 {
					col = c.Index - 1
				}
				cols[col] = strings.TrimSpace(c.Data)
				col++
			}
			if r == 0 {
				for i, h := range cols {
					if strings.EqualFold(h, "patient") {
						patientCol = i
					}
				}
				if cols[0] != "Resource" || patientCol < 0 {
					return nil, fmt.Errorf("%s: no Resource and patient columns", path)
				}
				continue
			}
			e := compartmentEntry{typ: cols[0]}
			for _, p := range strings.Split(cols[patientCol], "|") {
				if p = strings.TrimSpace(p); p != "" && p != "{def}" {
					e.params = append(e.params, p)
				}
			}
			if e.typ != "" {
				out = append(out, e)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: no worksheet \"resources\"", path)
}
