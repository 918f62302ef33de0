// Wraps key material the way Alibaba Cloud's Java sample does ("Import key material" guide):
// X509EncodedKeySpec for the base64 DER public key, then Cipher with the named algorithm.
// Usage: java WrapKeyMaterial.java <RSAES_OAEP_SHA_256|RSAES_OAEP_SHA_1|RSAES_PKCS1_V1_5> <PublicKey_base64.txt> <KeyMaterial.bin>
// Prints the base64 EncryptedKeyMaterial.
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.PublicKey;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.Base64;
import javax.crypto.Cipher;
import javax.crypto.spec.OAEPParameterSpec;
import javax.crypto.spec.PSource;

public class WrapKeyMaterial {
    public static void main(String[] args) throws Exception {
        String algorithm = args[0];
        byte[] der = Base64.getDecoder().decode(Files.readString(Path.of(args[1])).trim());
        byte[] material = Files.readAllBytes(Path.of(args[2]));
        PublicKey publicKey = KeyFactory.getInstance("RSA").generatePublic(new X509EncodedKeySpec(der));
        Cipher cipher;
        switch (algorithm) {
            case "RSAES_OAEP_SHA_256":
                cipher = Cipher.getInstance("RSA/ECB/OAEPWithSHA-256AndMGF1Padding");
                cipher.init(Cipher.ENCRYPT_MODE, publicKey, new OAEPParameterSpec(
                        "SHA-256", "MGF1", MGF1ParameterSpec.SHA256, PSource.PSpecified.DEFAULT));
                break;
            case "RSAES_OAEP_SHA_1":
                cipher = Cipher.getInstance("RSA/ECB/OAEPWithSHA-1AndMGF1Padding");
                cipher.init(Cipher.ENCRYPT_MODE, publicKey);
                break;
            case "RSAES_PKCS1_V1_5":
                cipher = Cipher.getInstance("RSA/ECB/PKCS1Padding");
                cipher.init(Cipher.ENCRYPT_MODE, publicKey);
                break;
            default:
                throw new IllegalArgumentException("unknown algorithm " + algorithm);
        }
        System.out.print(Base64.getEncoder().encodeToString(cipher.doFinal(material)));
    }
}
