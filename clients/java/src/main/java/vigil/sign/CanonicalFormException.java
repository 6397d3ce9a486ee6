package vigil.sign;

/** The event holds a value whose signature Vigil could not reproduce, or is not JSON. */
public final class CanonicalFormException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public CanonicalFormException(String message) {
        super(message);
    }
}
