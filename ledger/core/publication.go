package core

import (
	"regexp"
)

// What publication needs (issue 13 §4): the essential data of a grant agreement that an
// administration publishes in the SCDL "subventions" schema (décret n° 2017-779). Each award may
// carry its decision or agreement reference (referenceDecision), the beneficiary's legal name
// (nomBeneficiaire), SIRET (idBeneficiaire) and RNA number (rnaBeneficiaire), and its purpose
// (objet); each root envelope the granting body's name and SIRET (nomAttribuant, idAttribuant).
// All are optional, checked when given, stored, and returned as given.

// Publication is what an award says for publication; empty fields were not given.
type Publication struct {
	// DecisionReference is the reference of the decision or agreement (referenceDecision).
	DecisionReference string `json:"decision_reference,omitempty"`
	// BeneficiaryLegalName is the beneficiary's legal name (nomBeneficiaire).
	BeneficiaryLegalName string `json:"beneficiary_legal_name,omitempty"`
	// BeneficiarySIRET is the beneficiary's SIRET, 14 digits (idBeneficiaire); see CheckSIRET.
	BeneficiarySIRET string `json:"beneficiary_siret,omitempty"`
	// BeneficiaryRNA is the beneficiary's number in the register of associations, "W" and 9
	// digits (rnaBeneficiaire).
	BeneficiaryRNA string `json:"beneficiary_rna,omitempty"`
	// Purpose is what the award is for (objet), at most 256 characters.
	Purpose string `json:"purpose,omitempty"`
}

// Given reports whether any publication field was given.
func (p *Publication) Given() bool { return *p != Publication{} }

// GrantingBody is what a root envelope says of the body that grants its money.
type GrantingBody struct {
	// GrantingBodyName is the granting body's name (nomAttribuant).
	GrantingBodyName string `json:"granting_body_name,omitempty"`
	// GrantingBodySIRET is the granting body's SIRET (idAttribuant); see CheckSIRET.
	GrantingBodySIRET string `json:"granting_body_siret,omitempty"`
}

// Given reports whether a granting body field was given.
func (g *GrantingBody) Given() bool { return *g != GrantingBody{} }

var (
	siretPattern = regexp.MustCompile(Fields["beneficiary_siret"].Pattern)
	rnaPattern   = regexp.MustCompile(Fields["beneficiary_rna"].Pattern)
)

// LaPosteSIREN is La Poste's SIREN. INSEE numbers La Poste's establishments (over 10,000 of them)
// beyond what the Luhn key of a SIRET allows, so their SIRETs follow a rule of their own: the sum
// of the 14 digits is a multiple of 5. CheckSIRET accepts a SIRET under this SIREN that satisfies
// either rule (the head office's, 35600000000048, passes Luhn; most establishments' only the sum).
const LaPosteSIREN = "356000000"

// ValidSIRET reports whether s is a SIRET: 14 digits whose Luhn sum is a multiple of 10, or, under
// La Poste's SIREN, whose digits sum to a multiple of 5.
func ValidSIRET(s string) bool {
	if !siretPattern.MatchString(s) {
		return false
	}
	if luhn(s) {
		return true
	}
	if s[:9] == LaPosteSIREN {
		sum := 0
		for _, r := range s {
			sum += int(r - '0')
		}
		return sum%5 == 0
	}
	return false
}

// luhn reports whether the digits s pass the Luhn check (every second digit from the right
// doubled, the digits of the products summed: a multiple of 10).
func luhn(s string) bool {
	sum := 0
	for i := range len(s) {
		d := int(s[len(s)-1-i] - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// checkSIRET checks an optional SIRET given in field.
func checkSIRET(field, s string) error {
	switch {
	case s == "":
		return nil
	case !siretPattern.MatchString(s):
		return InvalidArgument(field, "must be a SIRET, 14 digits without spaces")
	case !ValidSIRET(s):
		return InvalidArgument(field, "is not a valid SIRET: its check digit (Luhn) does not match")
	}
	return nil
}

// validate checks an award's publication fields; prefix is "" or "items[i].".
func (p *Publication) validate(prefix string) error {
	if err := FirstError(CheckField(prefix+"decision_reference", "decision_reference", p.DecisionReference),
		CheckField(prefix+"beneficiary_legal_name", "beneficiary_legal_name", p.BeneficiaryLegalName),
		CheckField(prefix+"purpose", "purpose", p.Purpose),
		checkSIRET(prefix+"beneficiary_siret", p.BeneficiarySIRET)); err != nil {
		return err
	}
	if p.BeneficiaryRNA != "" && !rnaPattern.MatchString(p.BeneficiaryRNA) {
		return InvalidArgument(prefix+"beneficiary_rna", "must be an RNA number, W followed by 9 digits")
	}
	return nil
}

// validate checks an envelope's granting body fields.
func (g *GrantingBody) validate() error {
	return FirstError(CheckField("granting_body_name", "granting_body_name", g.GrantingBodyName),
		checkSIRET("granting_body_siret", g.GrantingBodySIRET))
}

// Fingerprints of the publication fields. They were added after requests had been recorded with
// canonical fingerprints, so they are appended only when given: a request without them keeps the
// fingerprint it always had (its retry still replays), and one with them is told apart from it
// by a tag that ends the encoding (a Commit, a CreateEnvelope) or follows the counted items (a
// BulkCommit), where nothing else can stand.

// publication appends the publication fields to a canonical fingerprint.
func (f *fingerprinter) publication(p Publication) *fingerprinter {
	return f.str(p.DecisionReference).str(p.BeneficiaryLegalName).str(p.BeneficiarySIRET).
		str(p.BeneficiaryRNA).str(p.Purpose)
}

// optionalPublication appends an award's publication fields after a tag, when any is given.
func (f *fingerprinter) optionalPublication(p Publication) *fingerprinter {
	if !p.Given() {
		return f
	}
	return f.str("publication").publication(p)
}

// itemPublications appends every item's publication fields after a tag, when any item gives one,
// and reports whether one did.
func (f *fingerprinter) itemPublications(items []BulkItem) bool {
	for _, it := range items {
		if it.Publication.Given() {
			f.str("publication")
			for _, it := range items {
				f.publication(it.Publication)
			}
			return true
		}
	}
	return false
}

// newFieldsGiven makes a request that gives fields the legacy encoding never had compare unequal
// to every legacy row (a legacy fingerprint has no "v2:" prefix, so Current never equals one).
func newFieldsGiven(given bool, fp Fingerprint) Fingerprint {
	if given {
		fp.Legacy = fp.Current
	}
	return fp
}

// grantingBody appends an envelope's granting body after a tag, when given.
func (f *fingerprinter) grantingBody(g GrantingBody) *fingerprinter {
	if !g.Given() {
		return f
	}
	return f.str("granting body").str(g.GrantingBodyName).str(g.GrantingBodySIRET)
}
