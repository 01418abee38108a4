// An encrypted field has no Display: plaintext leaves only through `open()` and `expose()`.
use plenum_hvac::Customer;

fn show(customer: &Customer) -> String {
    format!("{}", customer.email)
}

fn main() {}
