// A purpose's view holds only what the purpose may see: the marketing view of a technician's
// location ping has no coordinates, and the marketing-email view of a customer no address.
use plenum_hvac::{CustomerForMarketingEmail, LocationPingForMarketingEmail};

fn read(ping: LocationPingForMarketingEmail, customer: CustomerForMarketingEmail) {
    let _ = ping.latitude_micro;
    let _ = customer.service_address;
    let _ = customer.email; // present: this is what marketing email is for
}

fn main() {}
