// Wraps key material the way Go users do: x509.ParsePKIXPublicKey, then rsa.EncryptOAEP
// (SHA-256 or SHA-1, no label) or rsa.EncryptPKCS1v15.
// Usage: go run wrap.go <RSAES_OAEP_SHA_256|RSAES_OAEP_SHA_1|RSAES_PKCS1_V1_5> <PublicKey_base64.txt> <KeyMaterial.bin>
// Prints the base64 EncryptedKeyMaterial.
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

func main() {
	algorithm := os.Args[1]
	text, err := os.ReadFile(os.Args[2])
	check(err)
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(text)))
	check(err)
	material, err := os.ReadFile(os.Args[3])
	check(err)
	parsed, err := x509.ParsePKIXPublicKey(der)
	check(err)
	pub := parsed.(*rsa.PublicKey)
	var out []byte
	switch algorithm {
	case "RSAES_OAEP_SHA_256":
		out, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, material, nil)
	case "RSAES_OAEP_SHA_1":
		out, err = rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, material, nil)
	case "RSAES_PKCS1_V1_5":
		out, err = rsa.EncryptPKCS1v15(rand.Reader, pub, material)
	default:
		err = fmt.Errorf("unknown algorithm %s", algorithm)
	}
	check(err)
	fmt.Print(base64.StdEncoding.EncodeToString(out))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
