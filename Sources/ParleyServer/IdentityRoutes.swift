import Foundation
import Hummingbird
import ParleyAccess

/// What the web client needs to sign someone in: the issuers, and a nonce per sign-in.
struct IdentityRoutes {
    let verifier: OpenIDVerifier

    struct Provider: Encodable {
        var name: String
        var issuer: String
        var clientId: String
        var authorizationEndpoint: String?
    }

    func register(on router: Hummingbird.Router<ParleyRequestContext>) {
        router.get("api/auth/providers") { _, _ -> Response in
            var providers: [Provider] = []
            for provider in verifier.providers {
                providers.append(Provider(name: provider.name, issuer: provider.issuer, clientId: provider.clientID,
                                          authorizationEndpoint: await verifier.authorizationEndpoint(for: provider)))
            }
            return jsonResponse(providers)
        }
        router.post("api/auth/nonce") { _, _ -> Response in
            jsonResponse(["nonce": verifier.makeNonce()], status: .created)
        }
    }
}
