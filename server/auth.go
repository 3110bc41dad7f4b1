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
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"unicode"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	"github.com/budgetledger/budgetledger/ledger/core"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// Role is what a principal may do (DESIGN §6).
type Role string

// The roles. A principal has exactly one.
const (
	// RoleService is an internal system: it awards and releases (Commit, Release, BatchCommit),
	// pays and closes commitments (CreatePayment, CloseCommitment), and reads.
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
	// The open-data export reads what the funding report reads: the same roles.
	pb.ReportService_ExportSubventions_FullMethodName: everyone,

	pb.CommitmentService_Commit_FullMethodName:          {RoleService},
	pb.CommitmentService_Release_FullMethodName:         {RoleService},
	pb.CommitmentService_BatchCommit_FullMethodName:     {RoleService},
	pb.CommitmentService_GetCommitment_FullMethodName:   everyone,
	pb.CommitmentService_ListCommitments_FullMethodName: everyone,
	// Payments and closing are made by internal services, like awards (DESIGN §8).
	pb.CommitmentService_CreatePayment_FullMethodName:   {RoleService},
	pb.CommitmentService_CloseCommitment_FullMethodName: {RoleService},
	pb.CommitmentService_ListPayments_FullMethodName:    everyone,
	pb.CommitmentService_CreateHold_FullMethodName:      {RoleService},
	pb.CommitmentService_ConfirmHold_FullMethodName:     {RoleService},
	pb.CommitmentService_CancelHold_FullMethodName:      {RoleService},
	pb.CommitmentService_GetHold_FullMethodName:         everyone,
	pb.CommitmentService_ListHolds_FullMethodName:       everyone,

	pb.JournalService_ListJournalEntries_FullMethodName: everyone,
	// The transparency log and the journal stream (issue 14): for auditors, and for the
	// internal systems that follow the journal.
	pb.JournalService_GetCheckpoint_FullMethodName:       everyone,
	pb.JournalService_GetInclusionProof_FullMethodName:   everyone,
	pb.JournalService_GetConsistencyProof_FullMethodName: everyone,
	pb.JournalService_WatchJournalEntries_FullMethodName: everyone,

	pb.AuditService_VerifyLedger_FullMethodName: {RoleAuditor, RoleAdmin},
	// Background verifications (AIP-151): who may verify may start one and poll it.
	pb.AuditService_StartVerification_FullMethodName: {RoleAuditor, RoleAdmin},
	pb.AuditService_GetVerification_FullMethodName:   {RoleAuditor, RoleAdmin},

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
	// replaced is closed when a later reading takes this one's place, so that open streams
	// check their credential again.
	replaced chan struct{}
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
// A file that holds no credential is an error.
// A tokens file that others may write, or in a folder that others may write, is refused (see
// CheckTokensFilePermissions).
func (a *Authenticator) Reload() error {
	if _, err := CheckTokensFilePermissions(a.path); err != nil {
		return err
	}
	f, err := os.Open(a.path)
	if err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	set, err := parseCredentials(f)
	if err != nil {
		return fmt.Errorf("tokens file %s: %w", a.path, err)
	}
	if len(set.tokens) == 0 && len(set.certs) == 0 {
		// Authentication on with nobody to admit refuses every call: at start, a file emptied or
		// truncated by mistake; at a reload, the same mistake would shut every caller out.
		return fmt.Errorf("tokens file %s holds no credentials: every call would be refused", a.path)
	}
	if old := a.creds.Swap(set); old != nil {
		close(old.replaced)
	}
	return nil
}

// ErrTokensFileWritable refuses a tokens file that users other than its owner may write (or
// replace, through its folder or a folder above it, or a symbolic link's): whoever can write it
// can give themselves any role. A file or folder owned by a user other than ledgerd's own (or
// root) is refused alike: its owner may make it writable.
var ErrTokensFileWritable = errors.New("writable by group or others")

// CheckTokensFilePermissions refuses a tokens file that its group or other users may write, or
// replace (ErrTokensFileWritable): the file, found through any symbolic link, must be a regular
// file owned by ledgerd's user or root and writable by its owner alone; its folder likewise; and
// every folder above it, and above the path as given, owned by that user or root and writable by
// its owner alone unless sticky (as /tmp, where others cannot replace what is not theirs). It
// returns a warning when others may read the file: it holds no token, only their hashes, but names
// every principal and role.
func CheckTokensFilePermissions(path string) (warning string, err error) {
	return checkTokensFile(path, ownedHere)
}

// CheckTokensFileModes is CheckTokensFilePermissions without the owners: for a tool run by
// another user than the ledgerd that will read the file (ledgertoken run by root on a file of the
// service's user), which cannot tell whose it should be.
func CheckTokensFileModes(path string) (warning string, err error) {
	return checkTokensFile(path, func(os.FileInfo, string) error { return nil })
}

// checkTokensFile is CheckTokensFilePermissions with owned checking each owner (ownedHere, or
// nothing).
func checkTokensFile(path string, owned func(os.FileInfo, string) error) (warning string, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("tokens file: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("tokens file: %w", err)
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("tokens file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("tokens file %s is not a regular file", path)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return "", fmt.Errorf("tokens file %s is %w (mode %#o): run chmod go-w %s (chmod 600 is best)",
			path, ErrTokensFileWritable, st.Mode().Perm(), path)
	}
	if err := owned(st, "tokens file "+path); err != nil {
		return "", err
	}
	dir := filepath.Dir(real)
	dst, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("tokens file folder: %w", err)
	}
	if dst.Mode().Perm()&0o022 != 0 {
		return "", fmt.Errorf("the folder %s of the tokens file is %w (mode %#o), so they could replace the file: "+
			"keep the file in a folder only its owner writes", dir, ErrTokensFileWritable, dst.Mode().Perm())
	}
	if err := owned(dst, "the folder "+dir+" of the tokens file"); err != nil {
		return "", err
	}
	// The folders above, along the path as given (its links included) and the path found.
	checked := map[string]bool{dir: true}
	for _, p := range []string{filepath.Dir(abs), filepath.Dir(dir)} {
		for ; !checked[p]; p = filepath.Dir(p) {
			checked[p] = true
			fi, err := os.Lstat(p)
			if err != nil {
				return "", fmt.Errorf("tokens file folder: %w", err)
			}
			if fi.Mode()&os.ModeSymlink != 0 {
				// The link's target is on the path found; the link is its folder's.
			} else if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0 {
				return "", fmt.Errorf("the folder %s above the tokens file is %w (mode %#o), so they could replace the file: "+
					"keep the file under folders only their owners write", p, ErrTokensFileWritable, fi.Mode().Perm())
			} else if err := owned(fi, "the folder "+p+" above the tokens file"); err != nil {
				return "", err
			}
			if p == filepath.Dir(p) {
				break
			}
		}
	}
	if st.Mode().Perm()&0o004 != 0 {
		return fmt.Sprintf("tokens file %s is readable by every user (mode %#o): it names every principal and role; chmod 600 %s",
			path, st.Mode().Perm(), path), nil
	}
	return "", nil
}

// ownedHere refuses what fi describes when another user than ledgerd's own or root owns it.
func ownedHere(fi os.FileInfo, what string) error {
	uid, ok := fileOwner(fi)
	if !ok || uid == 0 || uid == os.Geteuid() {
		return nil
	}
	return fmt.Errorf("%s belongs to user %d, neither ledgerd's user (%d) nor root: it is %w through its owner, "+
		"who may change its mode", what, uid, os.Geteuid(), ErrTokensFileWritable)
}

// TokensFileRoles reads a tokens file and returns the role of each principal in it.
func TokensFileRoles(r io.Reader) (map[string]Role, error) {
	set, err := parseCredentials(r)
	if err != nil {
		return nil, err
	}
	roles := map[string]Role{}
	for _, p := range set.tokens {
		roles[p.name] = p.role
	}
	for _, p := range set.certs {
		roles[p.name] = p.role
	}
	return roles, nil
}

// Path is the tokens file's path.
func (a *Authenticator) Path() string { return a.path }

// Counts says how many tokens and certificate identities are in force.
func (a *Authenticator) Counts() (tokens, certs int) {
	set := a.creds.Load()
	return len(set.tokens), len(set.certs)
}

// parseCredentials reads a tokens file. Its errors name the line but never quote the credential:
// a token pasted by mistake in place of its hash must not reach a log.
func parseCredentials(r io.Reader) (*credentialSet, error) {
	set := &credentialSet{tokens: map[[sha256.Size]byte]principal{}, certs: map[string]principal{}, replaced: make(chan struct{})}
	lines := bufio.NewScanner(r)
	roles := map[string]Role{}
	roleLine := map[string]int{}
	certLine := map[string]int{} // the line of each certificate identity
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
				return nil, fmt.Errorf("line %d: the same certificate identity is on an earlier line (line %d)", n, certLine[value])
			}
			set.certs[value], certLine[value] = p, n
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
// "anonymous" (the caller recorded when authentication is off) and the names beginning with
// "ledger:", the callers of the ledger's own acts (core.ExpiryCaller, "ledger:hold-expiry", whose
// request ids name the holds it expires): a principal of that name would write entries that read
// as the sweeper's, and could record an outcome under a hold's expiry before the sweeper does.
func checkName(name string) error {
	if name == "anonymous" {
		return errors.New(`"anonymous" is the caller of unauthenticated servers; choose another principal name`)
	}
	if strings.HasPrefix(name, reservedCallers) {
		return fmt.Errorf("principal names beginning with %q are the ledger's own (its hold expiries are %q); choose another principal name",
			reservedCallers, core.ExpiryCaller)
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

// reservedCallers begins the callers of the ledger's own acts.
const reservedCallers = "ledger:"

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
func (set *credentialSet) authenticate(ctx context.Context) (principal, error) {
	return set.identify(metadata.ValueFromIncomingContext(ctx, "authorization"), verifiedClientCert(ctx))
}

// identify finds the principal of the authorization header values and of a verified client
// certificate (nil: none).
func (set *credentialSet) identify(authorization []string, leaf *x509.Certificate) (principal, error) {
	switch {
	case len(authorization) > 1:
		return principal{}, unauthenticated("send one authorization header, not several")
	case len(authorization) == 1:
		scheme, token, _ := strings.Cut(authorization[0], " ")
		if !strings.EqualFold(scheme, "bearer") || token == "" {
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
	if leaf != nil {
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

// AuthenticateHTTP finds the principal of an HTTP request (the metrics endpoint) as for a call:
// an "Authorization: Bearer <token>" header, or a client certificate verified by TLS, looked up
// in the tokens file in force. The error says what is wrong, never what was sent.
func (a *Authenticator) AuthenticateHTTP(r *http.Request) (name string, role Role, err error) {
	var leaf *x509.Certificate
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		leaf = r.TLS.VerifiedChains[0][0]
	}
	p, err := a.creds.Load().identify(r.Header.Values("Authorization"), leaf)
	if err != nil {
		return "", "", errors.New(status.Convert(err).Message())
	}
	return p.name, p.role, nil
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

// admit authenticates the caller of ctx and checks the authorization table for method, against
// the credentials in force. The principal is returned when found, even if refused.
func (a *Authenticator) admit(ctx context.Context, method string) (principal, error) {
	return a.admitWith(a.creds.Load(), ctx, method)
}

func (a *Authenticator) admitWith(set *credentialSet, ctx context.Context, method string) (principal, error) {
	p, err := set.authenticate(ctx)
	if err != nil {
		return principal{}, err
	}
	if !slices.Contains(authorization[method], p.role) {
		if _, known := authorization[method]; !known {
			method = "an unknown method" // the caller's text stays out of the reply
		}
		return p, withInfo(codes.PermissionDenied,
			fmt.Sprintf("principal %q (role %s) may not call %s", p.name, p.role, method),
			"PERMISSION_DENIED", map[string]string{"principal": p.name, "role": string(p.role), "method": method})
	}
	return p, nil
}

// withPrincipal records the authenticated caller in ctx.
func withPrincipal(ctx context.Context, p principal) context.Context {
	ctx = context.WithValue(ctx, principalKey{}, p.name)
	return context.WithValue(ctx, roleKey{}, p.role)
}

// principalOf is the caller recorded in ctx, if any.
func principalOf(ctx context.Context) principal {
	name, role, _ := PrincipalFrom(ctx)
	return principal{name: name, role: role}
}

// guarded matches every call but the open ones (health checks).
var guarded = selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
	return c.Service != openService
})

// principalLogField is the logging interceptor's field naming the authenticated principal: the
// tap's, or for a call through the HTTP transcoder (which no tap sees) the one requirePrincipal
// found later in the chain and left in the call's httpCall.
func principalLogField(ctx context.Context) logging.Fields {
	if name, _, ok := PrincipalFrom(ctx); ok {
		return logging.Fields{"principal", name}
	}
	if c := httpCallOf(ctx); c != nil && c.principal != "" {
		return logging.Fields{"principal", c.principal}
	}
	return nil
}
