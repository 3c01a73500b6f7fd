//! Hand-written evaluation sets: bookstore paraphrase groups, French adversarial pairs that
//! must never share an answer, and paraphrases of Service-Public.fr questions.
//!
//! Written for this evaluation, in the words customers use; none of them is used to set the
//! guards' word lists beyond what each list's comment says, so the rates measured on them are
//! not fitted to them.

/// Questions of one group ask the same thing: any two must hit.
pub const BOOKSTORE_GROUPS: &[&[&str]] = &[
    &[
        "Quels formats proposez-vous ?",
        "Quels sont les formats disponibles ?",
        "Sous quels formats vos livres sont-ils vendus ?",
        "Quels formats de livres proposez-vous ?",
    ],
    &[
        "Comment suivre ma commande ?",
        "Comment puis-je suivre ma commande ?",
        "Où en est ma commande ?",
        "Comment savoir où en est ma commande ?",
    ],
    &[
        "Quels sont les frais de livraison ?",
        "Combien coûte la livraison ?",
        "Quel est le prix de la livraison ?",
        "Quels sont vos frais de livraison ?",
    ],
    &[
        "Quels sont vos horaires d'ouverture ?",
        "À quelle heure ouvrez-vous ?",
        "Quels sont les horaires de la librairie ?",
        "Quels sont les horaires d'ouverture de la librairie ?",
    ],
    &[
        "Comment retourner un livre ?",
        "Comment faire un retour ?",
        "Comment renvoyer un livre ?",
        "Quelle est la procédure de retour d'un livre ?",
    ],
    &[
        "Puis-je payer par carte bancaire ?",
        "Acceptez-vous la carte bancaire ?",
        "Le paiement par carte bancaire est-il accepté ?",
        "Est-ce que je peux régler par carte bancaire ?",
    ],
    &[
        "Proposez-vous des cartes cadeaux ?",
        "Vendez-vous des cartes cadeaux ?",
        "Avez-vous des cartes cadeaux ?",
        "Est-il possible d'acheter une carte cadeau ?",
    ],
    &[
        "Comment créer un compte ?",
        "Comment créer mon compte client ?",
        "Comment ouvrir un compte ?",
        "Comment créer un compte sur le site ?",
    ],
    &[
        "J'ai oublié mon mot de passe, que faire ?",
        "Comment réinitialiser mon mot de passe ?",
        "Que faire si j'ai oublié mon mot de passe ?",
        "Comment récupérer mon mot de passe oublié ?",
    ],
    &[
        "Livrez-vous à l'étranger ?",
        "Est-ce que vous livrez à l'étranger ?",
        "Expédiez-vous à l'étranger ?",
        "Faites-vous des livraisons à l'étranger ?",
    ],
    &[
        "Combien de temps prend la livraison ?",
        "Quel est le délai de livraison ?",
        "Quels sont les délais de livraison ?",
        "En combien de temps suis-je livré ?",
    ],
    &[
        "Puis-je annuler ma commande ?",
        "Comment annuler ma commande ?",
        "Est-il possible d'annuler une commande ?",
        "Je voudrais annuler ma commande",
    ],
    &[
        "Puis-je réserver un livre en magasin ?",
        "Comment réserver un livre en librairie ?",
        "Est-il possible de réserver un livre en magasin ?",
        "Peut-on réserver un livre en boutique ?",
    ],
    &[
        "Proposez-vous le retrait en magasin ?",
        "Puis-je retirer ma commande en magasin ?",
        "Le retrait en librairie est-il possible ?",
        "Puis-je récupérer ma commande à la librairie ?",
    ],
    &[
        "Vos livres numériques ont-ils des DRM ?",
        "Vos ebooks ont-ils des DRM ?",
        "Y a-t-il des DRM sur vos livres numériques ?",
        "Les livres numériques sont-ils protégés par des DRM ?",
    ],
    &[
        "Comment contacter le service client ?",
        "Comment joindre le service client ?",
        "Comment puis-je contacter le service client ?",
        "Comment entrer en contact avec le service client ?",
    ],
    &[
        "Faites-vous des remises aux étudiants ?",
        "Proposez-vous une réduction pour les étudiants ?",
        "Y a-t-il une remise pour les étudiants ?",
        "Les étudiants ont-ils droit à une réduction ?",
    ],
    &[
        "Comment utiliser une carte cadeau ?",
        "Comment utiliser ma carte cadeau ?",
        "Comment utiliser une carte cadeau sur le site ?",
        "Où saisir le code de ma carte cadeau ?",
    ],
    &[
        "Puis-je commander un livre qui n'est pas en stock ?",
        "Peut-on commander un livre qui n'est pas disponible en stock ?",
        "Est-il possible de commander un livre qui n'est pas en stock ?",
    ],
    &[
        "Vendez-vous des livres d'occasion ?",
        "Proposez-vous des livres d'occasion ?",
        "Avez-vous des livres d'occasion ?",
        "Est-ce que vous vendez des livres d'occasion ?",
    ],
    &[
        "Organisez-vous des séances de dédicace ?",
        "Y a-t-il des dédicaces à la librairie ?",
        "Organisez-vous des dédicaces ?",
        "Proposez-vous des séances de dédicaces ?",
    ],
    &[
        "Comment modifier mon adresse de livraison ?",
        "Comment changer mon adresse de livraison ?",
        "Puis-je modifier l'adresse de livraison ?",
        "Comment mettre à jour mon adresse de livraison ?",
    ],
    &[
        "Ma commande est arrivée abîmée, que faire ?",
        "Que faire si mon livre est arrivé abîmé ?",
        "J'ai reçu un livre endommagé, que faire ?",
        "Mon colis est arrivé endommagé, comment faire ?",
    ],
    &[
        "Proposez-vous le paiement en plusieurs fois ?",
        "Puis-je payer en plusieurs fois ?",
        "Le paiement en plusieurs fois est-il possible ?",
        "Peut-on régler en plusieurs fois ?",
    ],
    &[
        "Acceptez-vous PayPal ?",
        "Puis-je payer avec PayPal ?",
        "Le paiement par PayPal est-il accepté ?",
        "Est-ce que vous acceptez PayPal ?",
    ],
    &[
        "Livrez-vous en Belgique ?",
        "Est-ce que vous livrez en Belgique ?",
        "Expédiez-vous en Belgique ?",
        "Faites-vous des livraisons en Belgique ?",
    ],
    &[
        "Quels sont les frais de livraison pour la Suisse ?",
        "Combien coûte la livraison en Suisse ?",
        "Quel est le prix de la livraison vers la Suisse ?",
    ],
    &[
        "Proposez-vous l'emballage cadeau ?",
        "Faites-vous des paquets cadeaux ?",
        "Est-il possible d'avoir un emballage cadeau ?",
        "Puis-je faire emballer un livre en paquet cadeau ?",
    ],
    &[
        "Combien de temps ai-je pour retourner un livre ?",
        "Quel est le délai de retour ?",
        "Dans quel délai puis-je retourner un livre ?",
        "Jusqu'à quand puis-je renvoyer un livre ?",
    ],
    &[
        "Comment lire un livre numérique ?",
        "Comment lire un ebook acheté chez vous ?",
        "Sur quel appareil lire vos livres numériques ?",
        "Avec quoi lire un livre numérique ?",
    ],
    &[
        "La livraison est-elle gratuite ?",
        "Les frais de port sont-ils offerts ?",
        "Livrez-vous gratuitement ?",
        "La livraison est-elle offerte ?",
    ],
    &[
        "Avez-vous un programme de fidélité ?",
        "Proposez-vous une carte de fidélité ?",
        "Existe-t-il une carte de fidélité ?",
        "Y a-t-il un programme de fidélité ?",
    ],
    &[
        "Comment télécharger mon livre numérique ?",
        "Où télécharger mon ebook ?",
        "Comment récupérer le livre numérique que j'ai acheté ?",
        "Comment télécharger l'ebook que j'ai acheté ?",
    ],
    &[
        "Vendez-vous des liseuses ?",
        "Proposez-vous des liseuses électroniques ?",
        "Avez-vous des liseuses en vente ?",
        "Est-ce que vous vendez des liseuses ?",
    ],
    &[
        "Puis-je commander par téléphone ?",
        "Est-il possible de passer commande par téléphone ?",
        "Peut-on commander par téléphone ?",
        "Prenez-vous les commandes par téléphone ?",
    ],
    &[
        "Où se trouve la librairie ?",
        "Quelle est l'adresse de la librairie ?",
        "Où êtes-vous situés ?",
        "Où est située la librairie ?",
    ],
    &[
        "Avez-vous un parking ?",
        "Y a-t-il un parking près de la librairie ?",
        "Peut-on se garer près de la librairie ?",
        "Où se garer pour venir à la librairie ?",
    ],
    &[
        "Comment obtenir une facture ?",
        "Où trouver ma facture ?",
        "Comment télécharger ma facture ?",
        "Puis-je avoir une facture pour ma commande ?",
    ],
    &[
        "Je n'ai pas reçu ma commande, que faire ?",
        "Ma commande n'est pas arrivée, que faire ?",
        "Que faire si je n'ai pas reçu ma commande ?",
        "Ma commande n'est jamais arrivée, que faire ?",
    ],
    &[
        "Peut-on payer en 3 fois ?",
        "Puis-je payer en trois fois ?",
        "Le paiement en 3 fois est-il possible ?",
        "Proposez-vous le paiement en trois fois ?",
    ],
];

/// (cached question, new question, what differs): must all be misses.
pub const ADVERSARIAL: &[(&str, &str, &str)] = &[
    (
        "Quels formats proposez-vous ?",
        "Quels formats ne proposez-vous pas ?",
        "negation",
    ),
    (
        "Livrez-vous le dimanche ?",
        "Ne livrez-vous pas le dimanche ?",
        "negation",
    ),
    (
        "Puis-je payer par chèque ?",
        "Ne puis-je pas payer par chèque ?",
        "negation",
    ),
    (
        "Acceptez-vous les retours ?",
        "Vous n'acceptez aucun retour ?",
        "negation",
    ),
    (
        "Vos livres numériques ont-ils des DRM ?",
        "Vos livres numériques sont-ils sans DRM ?",
        "negation",
    ),
    (
        "Pourquoi ma commande est-elle arrivée ?",
        "Pourquoi ma commande n'est-elle jamais arrivée ?",
        "negation",
    ),
    (
        "La livraison est-elle gratuite ?",
        "La livraison n'est-elle plus gratuite ?",
        "negation",
    ),
    (
        "Puis-je commander avec un compte ?",
        "Puis-je commander sans compte ?",
        "negation",
    ),
    (
        "Vous livrez le samedi ?",
        "Vous livrez pas le samedi ?",
        "negation",
    ),
    (
        "Peut-on payer en 3 fois ?",
        "Peut-on payer en 4 fois ?",
        "number",
    ),
    (
        "Peut-on payer en trois fois ?",
        "Peut-on payer en dix fois ?",
        "number",
    ),
    (
        "La livraison est-elle gratuite dès 35 € d'achat ?",
        "La livraison est-elle gratuite dès 50 € d'achat ?",
        "number",
    ),
    (
        "Avez-vous le tome 2 de One Piece ?",
        "Avez-vous le tome 3 de One Piece ?",
        "number",
    ),
    (
        "Puis-je retourner un livre après 14 jours ?",
        "Puis-je retourner un livre après 30 jours ?",
        "number",
    ),
    (
        "Êtes-vous ouverts le 1er mai ?",
        "Êtes-vous ouverts le 8 mai ?",
        "number",
    ),
    (
        "Livrez-vous en 24 heures ?",
        "Livrez-vous en 48 heures ?",
        "number",
    ),
    (
        "Combien coûte la livraison de deux livres ?",
        "Combien coûte la livraison de cinq livres ?",
        "number",
    ),
    (
        "Avez-vous le premier tome de Dune ?",
        "Avez-vous le deuxième tome de Dune ?",
        "number",
    ),
    ("Livrez-vous à Lyon ?", "Livrez-vous à Marseille ?", "place"),
    (
        "Avez-vous une librairie à Bordeaux ?",
        "Avez-vous une librairie à Nantes ?",
        "place",
    ),
    (
        "Livrez-vous en Belgique ?",
        "Livrez-vous en Suisse ?",
        "place",
    ),
    (
        "Quels sont les frais de livraison pour la Suisse ?",
        "Quels sont les frais de livraison pour le Canada ?",
        "place",
    ),
    (
        "Quels sont les horaires de la librairie de Lille ?",
        "Quels sont les horaires de la librairie de Rennes ?",
        "place",
    ),
    (
        "Peut-on retirer sa commande au magasin de Paris ?",
        "Peut-on retirer sa commande au magasin de Toulouse ?",
        "place",
    ),
    ("Livrez-vous en Corse ?", "Livrez-vous ?", "place"),
    (
        "Avez-vous Germinal en poche ?",
        "Avez-vous Madame Bovary en poche ?",
        "product",
    ),
    (
        "Vendez-vous des liseuses ?",
        "Vendez-vous des tablettes ?",
        "product",
    ),
    (
        "Vendez-vous des livres d'occasion ?",
        "Vendez-vous des bandes dessinées d'occasion ?",
        "product",
    ),
    (
        "Proposez-vous des cartes cadeaux ?",
        "Proposez-vous des marque-pages ?",
        "product",
    ),
    (
        "Le format EPUB est-il disponible ?",
        "Le format PDF est-il disponible ?",
        "product",
    ),
    (
        "Vendez-vous des livres audio ?",
        "Vendez-vous des livres numériques ?",
        "product",
    ),
    (
        "Avez-vous des mangas en anglais ?",
        "Avez-vous des romans en anglais ?",
        "product",
    ),
    (
        "Avez-vous des livres en anglais ?",
        "Avez-vous des livres en espagnol ?",
        "product",
    ),
    (
        "Comment activer les notifications ?",
        "Comment désactiver les notifications ?",
        "enable/disable",
    ),
    (
        "Comment m'abonner à la newsletter ?",
        "Comment me désabonner de la newsletter ?",
        "enable/disable",
    ),
    (
        "Comment ajouter un livre à ma liste d'envies ?",
        "Comment supprimer un livre de ma liste d'envies ?",
        "enable/disable",
    ),
    (
        "Comment me connecter à mon compte ?",
        "Comment me déconnecter de mon compte ?",
        "enable/disable",
    ),
    (
        "Comment acheter un livre d'occasion ?",
        "Comment vendre un livre d'occasion ?",
        "enable/disable",
    ),
    (
        "Comment ouvrir un compte ?",
        "Comment fermer un compte ?",
        "enable/disable",
    ),
    (
        "Comment activer ma carte cadeau ?",
        "Comment bloquer ma carte cadeau ?",
        "enable/disable",
    ),
    ("Quand livrez-vous ?", "Où livrez-vous ?", "other need"),
    (
        "Comment annuler ma commande ?",
        "Comment modifier ma commande ?",
        "other need",
    ),
    (
        "Comment suivre ma commande ?",
        "Comment annuler ma commande ?",
        "other need",
    ),
    (
        "Quels formats proposez-vous ?",
        "Proposez-vous des livres numériques ?",
        "other need",
    ),
    (
        "Quels formats proposez-vous ?",
        "What formats do you offer?",
        "language",
    ),
];

/// (question of `questions_spf.json` or `manual_question_autocomplete.csv`, paraphrase): the
/// paraphrase must find that question and no other.
pub const SERVICE_PUBLIC_PARAPHRASES: &[(&str, &str)] = &[
    (
        "Quelle est la surface minimum d'un logement à louer ?",
        "Quelle surface minimale doit avoir un logement mis en location ?",
    ),
    (
        "Qu'est-ce qu'un logement soumis au régime de la loi de 1948 ?",
        "Que signifie un logement soumis à la loi de 1948 ?",
    ),
    (
        "Quel est le délai de prescription d'une dette locative (charges et loyer) ?",
        "Au bout de combien de temps une dette de loyer et de charges est-elle prescrite ?",
    ),
    (
        "Qui est responsable des dégradations d'un logement en cours de location ?",
        "Qui est responsable des dégradations d'un logement pendant la location ?",
    ),
    (
        "Impôt sur le revenu : faut-il déclarer les revenus du covoiturage ?",
        "Faut-il déclarer aux impôts les revenus tirés du covoiturage ?",
    ),
    (
        "Permis de conduire à points : comment faire une réclamation ?",
        "Comment faire une réclamation concernant les points de mon permis de conduire ?",
    ),
    (
        "Logement social ou logement privé : quelles différences pour le locataire ?",
        "Quelles différences pour un locataire entre un logement social et un logement privé ?",
    ),
    (
        "Est-on obligé d'aider ses parents ou beaux-parents dans le besoin ?",
        "Doit-on obligatoirement aider ses parents ou beaux-parents dans le besoin ?",
    ),
    (
        "Comment faire pour qu'une condamnation ne figure pas sur son casier judiciaire ?",
        "Comment éviter qu'une condamnation ne figure sur son casier judiciaire ?",
    ),
    (
        "Qu'est-ce que le prêt sur gage ?",
        "Qu'est-ce qu'un prêt sur gage ?",
    ),
    (
        "Qu'est-ce qu'une réduction de peine ?",
        "En quoi consiste une réduction de peine ?",
    ),
    (
        "Un étranger peut-il travailler dans la fonction publique française ?",
        "Les étrangers peuvent-ils travailler dans la fonction publique en France ?",
    ),
    (
        "Assurance habitation : qu'est-ce que la garantie responsabilité civile ?",
        "Qu'est-ce que la garantie responsabilité civile d'une assurance habitation ?",
    ),
    (
        "Doit-on encore verser une pension alimentaire à un enfant devenu majeur ?",
        "Faut-il continuer à verser une pension alimentaire à un enfant majeur ?",
    ),
    (
        "Départ en retraite du salarié : quelles sont les démarches à effectuer ?",
        "Quelles démarches doit effectuer un salarié qui part en retraite ?",
    ),
    (
        "Médiateur du groupe La Poste : comment y recourir ?",
        "Comment faire appel au médiateur du groupe La Poste ?",
    ),
    (
        "Justice pénale : quels délais de prescription ?",
        "Quels sont les délais de prescription en justice pénale ?",
    ),
    (
        "Faut-il avoir une caution pour obtenir un crédit à la consommation ?",
        "Une caution est-elle nécessaire pour obtenir un crédit à la consommation ?",
    ),
    (
        "Que doit faire un étranger en cas de perte de sa carte de séjour ?",
        "Que faire quand un étranger perd sa carte de séjour ?",
    ),
    (
        "Qu'est-ce que la mobilité volontaire sécurisée ?",
        "En quoi consiste la mobilité volontaire sécurisée ?",
    ),
    (
        "Un agent public contractuel peut-il changer d'employeur ?",
        "Un contractuel de la fonction publique peut-il changer d'employeur ?",
    ),
    (
        "Peut-on avoir plusieurs nationalités ?",
        "Est-il possible d'avoir plusieurs nationalités ?",
    ),
    (
        "Qu'est-ce qu'un enfant à charge pour les prestations familiales ?",
        "Qu'appelle-t-on enfant à charge pour les prestations familiales ?",
    ),
    (
        "Qu'est-ce qu'une clause de non-concurrence ?",
        "En quoi consiste une clause de non-concurrence ?",
    ),
    (
        "Qu'est ce que l'assurance emprunteur d'un crédit immobilier ?",
        "Qu'est-ce que l'assurance emprunteur pour un crédit immobilier ?",
    ),
    (
        "Prestations familiales : que faire en cas de changement de situation ?",
        "Que faire en cas de changement de situation pour les prestations familiales ?",
    ),
    (
        "Doit-on s'assurer lorsqu'on circule à vélo ?",
        "Faut-il une assurance pour circuler à vélo ?",
    ),
    (
        "Quels véhicules peut-on conduire sans permis de conduire ?",
        "Quels véhicules peut-on conduire sans avoir le permis de conduire ?",
    ),
    (
        "Qu'est-ce qu'une grâce présidentielle ?",
        "En quoi consiste une grâce présidentielle ?",
    ),
    (
        "Comment devenir Français ?",
        "Comment obtenir la nationalité française ?",
    ),
    (
        "Faut-il déneiger le trottoir situé devant son habitation ?",
        "Doit-on déneiger le trottoir devant son habitation ?",
    ),
    (
        "En quoi consiste l'encadrement des loyers ?",
        "Qu'est-ce que l'encadrement des loyers ?",
    ),
    (
        "Le salarié et l'employeur peuvent-ils régler un conflit à l'amiable ?",
        "Un salarié et son employeur peuvent-ils régler un conflit à l'amiable ?",
    ),
    (
        "Un mineur peut-il faire l'objet d'une audition libre ?",
        "Un mineur peut-il être entendu en audition libre ?",
    ),
    (
        "Dans quels cas peut-on demander le déblocage anticipé de l'épargne salariale ?",
        "Quand peut-on demander le déblocage anticipé de son épargne salariale ?",
    ),
    (
        "Qu'est-ce que le socle commun de connaissances, de compétences et de culture ?",
        "Que recouvre le socle commun de connaissances, de compétences et de culture ?",
    ),
    (
        "Complément de loyer : quelles sont les règles ?",
        "Quelles sont les règles du complément de loyer ?",
    ),
    (
        "Perte/vol du permis de conduire : comment obtenir un timbre fiscal ?",
        "Comment obtenir un timbre fiscal en cas de perte ou de vol du permis de conduire ?",
    ),
    (
        "Peut-on porter une arme pour se défendre (couteau, bombe lacrymogène, etc.) ?",
        "A-t-on le droit de porter une arme pour se défendre ?",
    ),
    (
        "Médecine du travail : qu'est-ce que le suivi individuel renforcé ?",
        "Qu'est-ce que le suivi individuel renforcé en médecine du travail ?",
    ),
];

/// Questions of `manual_question_autocomplete.csv` that are paraphrases of one another although
/// the file lists them as separate entries; every other pair of its questions, including
/// those sharing a link, asks for something different.
pub const SERVICE_PUBLIC_TWINS: &[(&str, &str)] = &[
    (
        "Comment créer mon compte service-public.fr ?",
        "Comment créer un compte service-public.fr ?",
    ),
    (
        "Que faire si je rencontre un problème avec FranceConnect ?",
        "Que faire si j'ai un problème avec FranceConnect ?",
    ),
    (
        "Comment modifier le mot de passe de mon compte service-public.fr ?",
        "Comment modifier mon mot de passe sur service-public.fr ?",
    ),
    (
        "Comment faire si j'ai oublié le mot de passe de mon compte service-public.fr ?",
        "Que faire si j'ai oublié mon mot de passe sur service-public ?",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::guards::{check, GuardSettings};
    use crate::cache::text::Analysis;

    /// The guards alone refuse every adversarial pair, whatever the embedding similarity: the
    /// strongest form of "these must all be misses".
    #[test]
    fn guards_refuse_every_adversarial_pair_in_both_directions() {
        let settings = GuardSettings::default();
        for (cached, new, kind) in ADVERSARIAL {
            let (a, b) = (Analysis::of(cached), Analysis::of(new));
            assert!(
                check(&b, &a, &settings).is_err(),
                "{kind}: {new:?} would be served {cached:?}"
            );
            assert!(
                check(&a, &b, &settings).is_err(),
                "{kind}: {cached:?} would be served {new:?}"
            );
        }
    }

    #[test]
    fn sets_are_well_formed() {
        assert!(BOOKSTORE_GROUPS.iter().all(|g| g.len() >= 3));
        assert!(ADVERSARIAL.len() >= 40);
        assert!(SERVICE_PUBLIC_PARAPHRASES.len() >= 40);
    }
}
