package emulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// claims is what the emulator puts into the access tokens it issues. The
// token is a JWT signed with HS256 under a key made at start-up, so tokens
// from another emulator or edited by hand are rejected as forged.
type claims struct {
	Aud      string `json:"aud"`
	Iss      string `json:"iss"`
	Iat      int64  `json:"iat"`
	Nbf      int64  `json:"nbf"`
	Exp      int64  `json:"exp"`
	Tid      string `json:"tid"`
	AppID    string `json:"appid"`
	OID      string `json:"oid"`
	IDTyp    string `json:"idtyp"` // "app" or "user"
	UPN      string `json:"upn,omitempty"`
	Scp      string `json:"scp,omitempty"`
	Ver      string `json:"ver"`
	TokenUse string `json:"token_use,omitempty"` // "refresh" on refresh tokens
}

// principal is the caller: the app's client id for service principals, the
// UPN for users.
func (c *claims) principal() string {
	if c.IDTyp == "user" {
		return strings.ToLower(c.UPN)
	}
	return strings.ToLower(c.AppID)
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

func (e *Emulator) signToken(c *claims) string {
	body, _ := json.Marshal(c)
	unsigned := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(body)
	m := hmac.New(sha256.New, e.tokenKey)
	m.Write([]byte(unsigned))
	return unsigned + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

var (
	errTokenMissing = errors.New("no bearer token")
	errTokenForged  = errors.New("token signature is not valid")
	errTokenExpired = errors.New("token has expired")
)

// verifyToken checks signature and expiry (against the emulator's clock).
func (e *Emulator) verifyToken(tok string, now time.Time) (*claims, error) {
	if tok == "" {
		return nil, errTokenMissing
	}
	dot := strings.LastIndexByte(tok, '.')
	if dot <= 0 || strings.Count(tok, ".") != 2 {
		return nil, errTokenForged
	}
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		return nil, errTokenForged
	}
	m := hmac.New(sha256.New, e.tokenKey)
	m.Write([]byte(tok[:dot]))
	if !hmac.Equal(sig, m.Sum(nil)) {
		return nil, errTokenForged
	}
	first := strings.IndexByte(tok, '.')
	body, err := base64.RawURLEncoding.DecodeString(tok[first+1 : dot])
	if err != nil {
		return nil, errTokenForged
	}
	var c claims
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, errTokenForged
	}
	if now.Unix() >= c.Exp {
		return &c, errTokenExpired
	}
	return &c, nil
}

// bearer extracts the token from an Authorization header.
func bearer(h string) string {
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func parseCertPEM(s string) (*x509.Certificate, error) {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return c, nil
}
