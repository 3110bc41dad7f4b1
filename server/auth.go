package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"unicode"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// Role is what a principal may do (DESIGN §6).
type Role string

// The roles. A principal has exactly one.
const (
	// RoleService is an internal system: it awards and releases (Commit, Release, BatchCommit)
	// and reads.
	RoleService Role = "service"
	// RoleAdmin is a person managing the envelopes: CreateEnvelope, MoveAllocation, and reads.
	RoleAdmin Role = "admin"
	// RoleAuditor reads and verifies the ledger (VerifyLedger).
	RoleAuditor Role = "auditor"
)

// Roles lists every role.
var Roles = []Role{RoleService, RoleAdmin, RoleAuditor}

func (r Role) valid() bool { return slices.Contains(Roles, r) }

var everyone = []Role{RoleService, RoleAdmin, RoleAuditor}

// authorization is the one table of who may call what: every RPC the server serves, health
// checks excepted (they are open to all, without a credential), has an entry. A method missing
// from it is refused to everyone (TestAuthorizationEveryRPC fails on such a method first).
var authorization = map[string][]Role{
	pb.EnvelopeService_CreateEnvelope_FullMethodName: {RoleAdmin},
	pb.EnvelopeService_MoveAllocation_FullMethodName: {RoleAdmin},
	pb.EnvelopeService_GetEnvelope_FullMethodName:    everyone,
	pb.EnvelopeService_ListEnvelopes_FullMethodName:  everyone,
	// Funding rules are set by administrators, like envelopes, and read by anyone.
	pb.EnvelopeService_SetEnvelopeRules_FullMethodName: {RoleAdmin},
	pb.EnvelopeService_GetEnvelopeRules_FullMethodName: everyone,

	pb.ReportService_GetFundingReport_FullMethodName: everyone,

	pb.CommitmentService_Commit_FullMethodName:          {RoleService},
	pb.CommitmentService_Release_FullMethodName:         {RoleService},
	pb.CommitmentService_BatchCommit_FullMethodName:     {RoleService},
	pb.CommitmentService_GetCommitment_FullMethodName:   everyone,
	pb.CommitmentService_ListCommitments_FullMethodName: everyone,

	pb.JournalService_ListJournalEntries_FullMethodName: everyone,

	pb.AuditService_VerifyLedger_FullMethodName: {RoleAuditor, RoleAdmin},

	// Server reflection (grpcurl list/describe) needs a credential, of any role.
	reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      everyone,
	reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: everyone,
}

// AllowedRoles returns the roles that may call fullMethod ("/budgetledger.v1.CommitmentService/Commit"),
// and whether the authorization table has an entry for it at all.
func AllowedRoles(fullMethod string) ([]Role, bool) {
	roles, ok := authorization[fullMethod]
	return slices.Clone(roles), ok
}

// openService is the service every caller may use without a credential.
var openService = healthpb.Health_ServiceDesc.ServiceName

// principal is an authenticated caller.
type principal struct {
	name string
	role Role
	hash [sha256.Size]byte // of the token, for a token's entry
}

type roleKey struct{}

// PrincipalFrom returns the name and the role of the caller authenticated for ctx; ok is false
// when authentication is off or the method is open (health checks). The name is what the journal
// records as the entries' caller.
func PrincipalFrom(ctx context.Context) (name string, role Role, ok bool) {
	name, _ = ctx.Value(principalKey{}).(string)
	role, ok = ctx.Value(roleKey{}).(Role)
	return name, role, ok && name != ""
}

// credentialSet is one reading of the tokens file.
type credentialSet struct {
	tokens map[[sha256.Size]byte]principal // by the SHA-256 of the token
	certs  map[string]principal            // by "CN=<common name>" or "URI=<URI SAN>"
}

// Authenticator authenticates callers by bearer token or client certificate against a tokens
// file, and authorizes them by role. Safe for concurrent use; Reload swaps the file's contents in
// at once, without dropping a call.
//
// The tokens file holds one credential per line; a "#" at the start of a field starts a comment:
//
//	# hash of the token             principal  role
//	sha256:9f86d081884c7d65…0f00a08  alice      admin
//	# client certificate identity   principal  role
//	cert:URI=spiffe://ledger.example/billing  billing  service
//	cert:CN=reporting                          reports  auditor
//
// The last two fields are the principal's name and its role (service, admin or auditor); what
// comes before them is the credential: "sha256:" and the 64 hex digits of the SHA-256 of a token
// (never the token itself: see MintToken), or "cert:CN=" and the subject common name of a client
// certificate, or "cert:URI=" and a URI subject alternative name (such as a SPIFFE ID). A name
// keeps one role across all its lines; a principal may have several tokens (to rotate them).
type Authenticator struct {
	path  string
	creds atomic.Pointer[credentialSet]
}

// NewAuthenticator reads the tokens file at path (see Authenticator).
func NewAuthenticator(path string) (*Authenticator, error) {
	a := &Authenticator{path: path}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload reads the tokens file again. On an error the credentials in force stay as they were.
func (a *Authenticator) Reload() error {
	f, err := os.Open(a.path)
	if err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	set, err := parseCredentials(f)
	if err != nil {
		return fmt.Errorf("tokens file %s: %w", a.path, err)
	}
	a.creds.Store(set)
	return nil
}

// Counts says how many tokens and certificate identities are in force.
func (a *Authenticator) Counts() (tokens, certs int) {
	set := a.creds.Load()
	return len(set.tokens), len(set.certs)
}

// parseCredentials reads a tokens file. Its errors name the line but never quote the credential:
// a token pasted by mistake in place of its hash must not reach a log.
func parseCredentials(r io.Reader) (*credentialSet, error) {
	set := &credentialSet{tokens: map[[sha256.Size]byte]principal{}, certs: map[string]principal{}}
	lines := bufio.NewScanner(r)
	roles := map[string]Role{}
	roleLine := map[string]int{}
	for n := 1; lines.Scan(); n++ {
		fields := strings.Fields(stripComment(lines.Text()))
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 3 {
			return nil, fmt.Errorf("line %d: want a credential, a principal name and a role", n)
		}
		name, role := fields[len(fields)-2], Role(fields[len(fields)-1])
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if !role.valid() {
			return nil, fmt.Errorf("line %d: the role (last field) is none of service, admin, auditor", n)
		}
		if r, ok := roles[name]; ok && r != role {
			return nil, fmt.Errorf("line %d: the principal has role %s here and %s on line %d; a principal has one role", n, role, r, roleLine[name])
		}
		roles[name], roleLine[name] = role, n
		p := principal{name: name, role: role}
		// The credential is what precedes the name: a certificate's common name may hold spaces.
		credential := strings.TrimSpace(stripComment(lines.Text()))
		for range 2 {
			credential = strings.TrimSpace(credential[:strings.LastIndexFunc(credential, unicode.IsSpace)])
		}
		switch kind, value, _ := strings.Cut(credential, ":"); kind {
		case "sha256":
			sum, err := hex.DecodeString(value)
			if err != nil || len(sum) != sha256.Size {
				return nil, fmt.Errorf("line %d: a token's hash is sha256: and 64 hex digits (ledgertoken prints the line)", n)
			}
			copy(p.hash[:], sum)
			if _, dup := set.tokens[p.hash]; dup {
				return nil, fmt.Errorf("line %d: the same token hash is on an earlier line", n)
			}
			set.tokens[p.hash] = p
		case "cert":
			if attr, id, _ := strings.Cut(value, "="); attr != "CN" && attr != "URI" || id == "" {
				return nil, fmt.Errorf("line %d: a certificate identity is cert:CN=<common name> or cert:URI=<URI SAN>", n)
			}
			if _, dup := set.certs[value]; dup {
				return nil, fmt.Errorf("line %d: certificate identity %q is on an earlier line", n, value)
			}
			set.certs[value] = p
		default:
			return nil, fmt.Errorf("line %d: a credential starts with sha256: (a token's hash) or cert: (a client certificate's identity)", n)
		}
	}
	if err := lines.Err(); err != nil {
		return nil, err
	}
	return set, nil
}

// stripComment cuts a line at a "#" that starts a field.
func stripComment(line string) string {
	for i := range len(line) {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

// checkName accepts principal names of 1 to 128 letters, digits and . _ - @ : / +, other than
// "anonymous" (the caller recorded when authentication is off).
func checkName(name string) error {
	if name == "anonymous" {
		return errors.New(`"anonymous" is the caller of unauthenticated servers; choose another principal name`)
	}
	if len(name) > 128 {
		return errors.New("a principal name has at most 128 characters")
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("._-@:/+", c)) {
			return errors.New("a principal name has only letters, digits and . _ - @ : / +")
		}
	}
	return nil
}

// CheckPrincipal reports whether name and role may stand in a tokens file.
func CheckPrincipal(name string, role Role) error {
	if err := checkName(name); err != nil {
		return err
	}
	if !role.valid() {
		return fmt.Errorf("role %q is none of service, admin, auditor", role)
	}
	return nil
}

// TokenPrefix starts every token MintToken makes, so that a token can be recognised (by secret
// scanners, in a log) for what it is.
const TokenPrefix = "blt_"

// MintToken returns a new random token (256 bits) and its tokens file line for name and role.
// Hand the token to the principal; keep only the line.
func MintToken(name string, role Role) (token, line string, err error) {
	if err := CheckPrincipal(name, role); err != nil {
		return "", "", err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, TokenHash(token) + " " + name + " " + string(role), nil
}

// TokenHash is the credential of a token in the tokens file: "sha256:" and its hex digest.
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// authenticate finds the caller of ctx: the bearer token when there is one (a wrong token is
// refused, even with a good certificate), else the verified client certificate.
func (a *Authenticator) authenticate(ctx context.Context) (principal, error) {
	set := a.creds.Load()
	switch vals := metadata.ValueFromIncomingContext(ctx, "authorization"); {
	case len(vals) > 1:
		return principal{}, unauthenticated("send one authorization header, not several")
	case len(vals) == 1:
		token, err := auth.AuthFromMD(ctx, "bearer")
		if err != nil || token == "" {
			// AuthFromMD's own messages are fine, but ours say what to send.
			return principal{}, unauthenticated(`the authorization header must be "Bearer <token>"`)
		}
		sum := sha256.Sum256([]byte(token))
		p, ok := set.tokens[sum]
		// The lookup is by the hash, which tells a timing observer nothing about another token;
		// the comparison itself takes the same time whatever the bytes.
		if !ok || subtle.ConstantTimeCompare(p.hash[:], sum[:]) != 1 {
			return principal{}, unauthenticated("unknown bearer token")
		}
		return p, nil
	}
	if leaf := verifiedClientCert(ctx); leaf != nil {
		for _, u := range leaf.URIs {
			if p, ok := set.certs["URI="+u.String()]; ok {
				return p, nil
			}
		}
		if cn := leaf.Subject.CommonName; cn != "" {
			if p, ok := set.certs["CN="+cn]; ok {
				return p, nil
			}
		}
		return principal{}, unauthenticated("the client certificate's identity (URI SAN or CN) is not in the tokens file")
	}
	return principal{}, unauthenticated(`missing credential: send "authorization: Bearer <token>" or a client certificate`)
}

// verifiedClientCert is the client's certificate when TLS verified it against the client CAs.
func verifiedClientCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return info.State.VerifiedChains[0][0]
}

func unauthenticated(msg string) error {
	return withInfo(codes.Unauthenticated, msg, "UNAUTHENTICATED", nil)
}

// authFunc authenticates the caller, then checks the authorization table for the method.
func (a *Authenticator) authFunc(log *slog.Logger) auth.AuthFunc {
	return func(ctx context.Context) (context.Context, error) {
		p, err := a.authenticate(ctx)
		if err != nil {
			return nil, err
		}
		slot, logged := ctx.Value(logSlotKey{}).(*logSlot)
		if logged {
			slot.principal.Store(&p.name)
		}
		method, _ := grpc.Method(ctx)
		if !slices.Contains(authorization[method], p.role) {
			if !logged { // else the call's line says it, at WARN
				log.WarnContext(ctx, "permission denied", "principal", p.name, "role", string(p.role), "grpc.method", method)
			}
			return nil, withInfo(codes.PermissionDenied,
				fmt.Sprintf("principal %q (role %s) may not call %s", p.name, p.role, method),
				"PERMISSION_DENIED", map[string]string{"principal": p.name, "role": string(p.role), "method": method})
		}
		ctx = context.WithValue(ctx, principalKey{}, p.name)
		return context.WithValue(ctx, roleKey{}, p.role), nil
	}
}

// guarded matches every call but the open ones (health checks).
var guarded = selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
	return c.Service != openService
})

// logSlot lets the logging interceptor, which runs outside authentication, name the principal
// on its line once authentication has found it.
type logSlot struct{ principal atomic.Pointer[string] }

type logSlotKey struct{}

// withLogSlot runs the logging interceptor with a slot for the principal in its context.
func withLogSlot(logInterceptor grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return logInterceptor(context.WithValue(ctx, logSlotKey{}, &logSlot{}), req, info, handler)
	}
}

// principalLogField is the logging interceptor's field naming the authenticated principal.
func principalLogField(ctx context.Context) logging.Fields {
	if slot, ok := ctx.Value(logSlotKey{}).(*logSlot); ok {
		if name := slot.principal.Load(); name != nil {
			return logging.Fields{"principal", *name}
		}
	}
	return nil
}
