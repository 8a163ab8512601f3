package search_test

import (
	"testing"

	"github.com/tranchehq/tranche/internal/search"
)

// benchObservation is a lab Observation shaped like the generator's.
var benchObservation = []byte(`{"resourceType":"Observation","id":"13ec46b1-32f2-4b13-ab77-44220d822af3","meta":{"lastUpdated":"2024-09-17T20:44:09.769Z"},"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory","display":"Laboratory"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"2339-0","display":"Glucose"}],"text":"Glucose"},"subject":{"reference":"Patient/2944f648-ac46-49d0-969d-caee8ca46881"},"encounter":{"reference":"Encounter/0926a404-1d24-42e0-b247-d687af72904a"},"effectiveDateTime":"2024-09-17T20:43:33Z","issued":"2024-09-17T20:43:33.242Z","valueQuantity":{"value":105.5,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}}`)

func BenchmarkFilter_Match(b *testing.B) {
	for _, q := range []string{
		"Observation?status=final",
		"Observation?category=laboratory&date=ge2024-01",
		"Observation?code=http://loinc.org|2339-0&patient=Patient/2944f648-ac46-49d0-969d-caee8ca46881&value-quantity=gt100",
	} {
		f, err := search.Parse(q)
		if err != nil {
			b.Fatal(err)
		}
		if !f.Match(benchObservation) {
			b.Fatalf("%s does not match", q)
		}
		b.Run(q, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				f.Match(benchObservation)
			}
		})
	}
}

func BenchmarkElements_Subset(b *testing.B) {
	e, err := search.ParseElements([]string{"Observation.effective,Observation.subject"})
	if err != nil {
		b.Fatal(err)
	}
	if _, ok := e.Subset("Observation", benchObservation); !ok {
		b.Fatal("not subsetted")
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		e.Subset("Observation", benchObservation)
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := search.Parse("Observation?category=laboratory&date=ge2024-01&code=http://loinc.org|2339-0,http://loinc.org|8302-2"); err != nil {
			b.Fatal(err)
		}
	}
}
