package fhir

// ResourceTypes lists every resource type of FHIR R4 (4.0.1), sorted: the R4
// ResourceType value set without the abstract Resource and DomainResource
// (R4Model; a store of another release uses its Model's).
var ResourceTypes = R4Model().ResourceTypes()

// IsResourceType reports whether s is an R4 resource type (case-sensitive).
func IsResourceType(s string) bool { return R4Model().IsResourceType(s) }

// isAnyResourceType reports whether s is a resource type of any supported
// release.
func isAnyResourceType(s string) bool {
	modelsOnce.Do(buildModels)
	return anyType[s]
}
